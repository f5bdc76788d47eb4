"""Sharded data: pseudo-label bytes and accuracy, streaming read throughput, label-writing rate.

Prints (with the machine's ``uptime`` load before and after):

* **bytes per pseudo-label** at 518x518 and 1000x750 for the file-per-item store (float16
  ``.npy``, today's default), compressed float16 (``np.savez_compressed``) and the shard
  encoding (16-bit PNG + per-image range), and each one's deviation from float32 (max |error|
  relative to the image's disparity range, and the 99th percentile of |error| / disparity).
  Disparities are dense real ones: ICL-NUIM depth frames from ``--rgbd`` (1 / depth, resized);
* **read throughput** (samples/s and CPU ms/sample, 2 and 0 loader workers): the folder source
  (``ImageFolder`` + ``SafeDataset`` + shuffled ``DataLoader``) vs the shard source
  (``ShardedImages`` + ``ShardLoader``) on the same JPEG bytes (the folder's files are the shard
  members), with the same decoding, per-sample transform, collate, batch size and workers: decoded
  samples only, and the student's unlabeled pipeline (resize + random crop ``--crop`` +
  ``collate_samples``). One warm-up epoch each, then ``--repeats`` rounds with the order
  alternating; medians, min-max and per-round ratios; the 1-minute load before and after each
  row. Then the per-stage CPU cost of both paths in one process (tar members, json, decode,
  sample, transform, collate). litdata's ``StreamingDataset`` on the same files with ``--litdata``;
* **label writing** (items/s, model excluded): ``PseudoLabelWriter`` (one fsync'd ``.npy`` per
  item + manifest line) vs ``PseudoLabelShardWriter`` at 518x518;
* **pseudo-labelling job** (items/s, ``--job``): ``PseudoLabelTask`` with a tiny random teacher
  (``tiny`` preset) predicting the JPEG images at ``--job_size``, written by the file-store
  callback vs ``PseudoLabelShardCallback``.

    python benchmarks/bench_shards.py --count 400 --litdata
    python benchmarks/bench_shards.py --read_only --count 600     # read throughput only
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from da_toolkit.data.collate import collate_samples
from da_toolkit.data.datamodule import _drop_labels
from da_toolkit.data.io import decode_rgb, read_png_uint16, read_rgb
from da_toolkit.data.pseudo_store import PseudoLabelWriter
from da_toolkit.data.robust import SafeDataset
from da_toolkit.data.shards import ShardedImages, ShardLoader, ShardWriter
from da_toolkit.data.shards.codec import (
    decode_disparity,
    decode_disparity_f16z,
    decode_image,
    encode_disparity,
    encode_disparity_f16z,
)
from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter
from da_toolkit.data.sources.folders import ImageFolder
from da_toolkit.data.transforms import TrainTransform


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _disparities(rgbd: Path, size: tuple[int, int], n: int) -> list[np.ndarray]:
    """Dense relative disparities ``1 / depth`` of ICL-NUIM frames resized to ``size`` (w, h)."""
    files = sorted((rgbd / "icl_nuim_livingroom1_synthetic" / "depth").glob("*.png"))[:n]
    out = []
    for f in files:
        depth = read_png_uint16(f).astype(np.float32) / 1000.0
        disp = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-3), np.nan).astype(np.float32)
        out.append(cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR))
    return out


def _deviation(ref: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    ok = np.isfinite(ref)
    err = np.abs(got[ok].astype(np.float64) - ref[ok].astype(np.float64))
    span = float(ref[ok].max() - ref[ok].min())
    return float(err.max() / span), float(np.percentile(err / np.abs(ref[ok]), 99))


def bench_bytes(rgbd: Path) -> None:
    print("bytes per pseudo-label (mean over 10 ICL-NUIM frames) and deviation from float32")
    print(f"{'size':>9} | {'encoding':<28} | {'bytes':>9} | {'max err / range':>15} | {'p99 rel err':>11}")
    for w, h in ((518, 518), (1000, 750)):
        disps = _disparities(rgbd, (w, h), 10)
        rows: dict[str, list[tuple[int, float, float]]] = {
            "store: float16 .npy (today)": [], "shards float16z (default)": [], "shards png16 + range": []}
        for d in disps:
            buf = io.BytesIO()
            np.save(buf, d.astype(np.float16))
            f16 = d.astype(np.float16).astype(np.float32)
            rows["store: float16 .npy (today)"].append((buf.getbuffer().nbytes, *_deviation(d, f16)))
            data, shape = encode_disparity_f16z(d)
            back, _ = decode_disparity_f16z(data, shape, "bench")
            rows["shards float16z (default)"].append((len(data) + 20, *_deviation(d, back)))  # + json shape
            png, rng = encode_disparity(d)
            back, _ = decode_disparity(png, rng, "bench")
            rows["shards png16 + range"].append((len(png) + 40, *_deviation(d, back)))  # + json range
        for name, vals in rows.items():
            a = np.asarray(vals)
            print(f"{w}x{h:<5} | {name:<28} | {a[:, 0].mean():9.0f} | {a[:, 1].max():15.2e} | {a[:, 2].max():11.2e}")


def _images(root: Path, rgbd: Path, count: int) -> list[bytes]:
    """``count`` JPEG files under ``root`` (the 60 real 640x480 frames of ``rgbd``, repeated); their bytes."""
    frames = sorted((rgbd / "7scenes_redkitchen" / "rgb").glob("*.jpg"))
    frames += sorted((rgbd / "icl_nuim_livingroom1_synthetic" / "rgb").glob("*.jpg"))
    blobs = [f.read_bytes() for f in frames]
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        (root / f"{i:06d}.jpg").write_bytes(blobs[i % len(blobs)])
        out.append(blobs[i % len(blobs)])
    return out


def _same_bytes_shards(folder: ImageFolder, blobs: list[bytes], root: Path, maxcount: int) -> str:
    """Shards holding the folder's JPEG files byte for byte (the converter would re-encode them),
    with the ``json`` member the converter writes; returns the index path."""
    with ShardWriter(str(root), "img", maxcount=maxcount) as writer:
        for i, data in enumerate(blobs):
            meta = folder[i]["meta"]
            info = {"id": meta["id"], "source": meta["source"], "image_ref": meta["image_ref"]}
            writer.write(meta["id"], {"jpg": data, "json": json.dumps(info, sort_keys=True).encode()})
    return str(root / "img.index.json")


def _count(batch: list) -> int:
    return len(batch)


def _count_collated(batch: dict[str, Any]) -> int:
    return int(batch["image"].shape[0])


class _CollateCount:  # picklable: collate in the worker (as training does), hand back the count
    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, items: list) -> int:
        return _count_collated(self.collate(items))


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the joined loader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _epoch(loader: Any) -> tuple[float, float, int]:
    """One epoch of ``loader``: (wall s, CPU s of this process + its workers, samples)."""
    n, c0, t0 = 0, _cpu_seconds(), time.perf_counter()
    for b in loader:
        n += b
    wall = time.perf_counter() - t0
    return wall, _cpu_seconds() - c0, n


def _read_loaders(folder: ImageFolder, index: str, workers: int, batch: int, crop: int | None) -> dict[str, Any]:
    """The folder loader (``SafeDataset`` + shuffled ``DataLoader``, as ``DepthDataModule``) and the
    shard loader (``ShardedImages`` + ``ShardLoader``, as ``ShardStudentDataModule``): same
    decoding, same per-sample transform, same collate, batch size, workers and drop_last."""
    if crop is None:  # decoded samples only
        transform, collate, drop_last = _identity, _count, False
    else:  # the student's unlabeled stream: resize + random crop to tensors, collate_samples
        transform = _drop_labels(TrainTransform(crop, flip=False))
        collate, drop_last = _CollateCount(collate_samples), True
    shards = ShardedImages(index=index, shuffle_buffer=256)
    shards.transform = None if crop is None else transform
    safe = SafeDataset(folder, transform)
    return {
        "folder": DataLoader(safe, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate,
                             drop_last=drop_last, generator=torch.Generator().manual_seed(0)),
        "shards": ShardLoader(shards, batch_size=batch, num_workers=workers, collate_fn=collate, drop_last=drop_last),
    }


def _identity(sample: Any) -> Any:
    return sample


def _median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} [{min(values):6.1f}-{max(values):6.1f}]"


def bench_read(tmp: Path, rgbd: Path, count: int, worker_counts: list[int], litdata: bool, repeats: int = 5,
               batch: int = 16, crop: int = 518, maxcount: int = 100) -> list[dict[str, Any]]:
    """Read throughput of the folder source vs the shard source on the same JPEG bytes; returns one
    record per table row with the raw per-round figures."""
    blobs = _images(tmp / "folder", rgbd, count)
    folder = ImageFolder(tmp / "folder")
    index = _same_bytes_shards(folder, blobs, tmp / "shards", maxcount)
    h, w = read_rgb(tmp / "folder" / "000000.jpg").shape[:2]
    print(f"\nread throughput: {count} JPEG images {w}x{h} (the same bytes in files and in {-(-count // maxcount)} "
          f"shards of {maxcount}), batch {batch}, one epoch per round after one warm-up epoch each, "
          f"{repeats} rounds, the order alternating; samples/s median [min-max], CPU ms/sample "
          "(this process + its workers) median")
    print(f"{'pipeline':<26} | {'workers':>7} | {'folder samples/s':>24} | {'shards samples/s':>24} | "
          f"{'ratio (median, min-max)':>23} | {'CPU ms/sample f / s':>19} | load 1-min")
    records: list[dict[str, Any]] = []
    for crop_size in (None, crop) if crop > 0 else (None,):
        for workers in worker_counts:
            loaders = _read_loaders(folder, index, workers, batch, crop_size)
            for loader in loaders.values():  # warm-up (page cache, first-touch imports in the workers)
                _epoch(loader)
            rates: dict[str, list[float]] = {"folder": [], "shards": []}
            cpus: dict[str, list[float]] = {"folder": [], "shards": []}
            samples: dict[str, list[int]] = {"folder": [], "shards": []}
            ratios, loads = [], [os.getloadavg()[0]]
            for r in range(repeats):
                order = ("folder", "shards") if r % 2 == 0 else ("shards", "folder")
                for name in order:
                    wall, cpu, n = _epoch(loaders[name])
                    rates[name].append(n / wall)
                    cpus[name].append(1e3 * cpu / n)
                    samples[name].append(n)
                ratios.append(rates["shards"][-1] / rates["folder"][-1])
            loads.append(os.getloadavg()[0])
            label = "decode" if crop_size is None else f"decode+crop {crop_size}+collate"
            print(f"{label:<26} | {workers:>7} | {_median_spread(rates['folder']):>24} | "
                  f"{_median_spread(rates['shards']):>24} | "
                  f"{statistics.median(ratios):5.2f} [{min(ratios):.2f}-{max(ratios):.2f}]{'':>7} | "
                  f"{statistics.median(cpus['folder']):8.2f} / {statistics.median(cpus['shards']):6.2f} | "
                  f"{loads[0]:.1f} -> {loads[1]:.1f}")
            print(f"{'':<26}   per-round ratios shards/folder: {' '.join(f'{x:.2f}' for x in ratios)}")
            records.append({"pipeline": label, "workers": workers, "batch": batch, "samples_per_epoch": samples,
                            "samples_per_s": rates, "cpu_ms_per_sample": cpus, "ratios": ratios,
                            "ratio_median": statistics.median(ratios), "load_1min": loads})
    if litdata:
        from litdata import StreamingDataLoader, StreamingDataset, optimize

        out = tmp / "litdata"
        optimize(fn=_lit_item, inputs=[str(tmp / "folder" / f"{i:06d}.jpg") for i in range(count)],
                 output_dir=str(out), chunk_bytes="64MB", num_workers=1, verbose=False)
        ds = StreamingDataset(str(out), shuffle=True, transform=_decode_litdata)
        ll = StreamingDataLoader(ds, batch_size=batch, num_workers=worker_counts[0], collate_fn=_count)
        _epoch(ll)
        lr = [n / wall for wall, _, n in (_epoch(ll) for _ in range(repeats))]
        print(f"litdata StreamingDataset (its own chunk format), decode, {worker_counts[0]} workers: "
              f"{_median_spread(lr)} samples/s")
    return records


def _decode_litdata(item: dict[str, Any]) -> np.ndarray:
    return decode_rgb(item["jpg"], "litdata")


def _lit_item(path: str) -> dict:
    return {"jpg": Path(path).read_bytes(), "id": Path(path).stem}


def _pax_shards(raws: list[dict[str, Any]], root: Path) -> list[str]:
    """The samples again in shards of 100 as the writer wrote them before (float mtime: tarfile adds
    a PAX header to every member)."""
    from webdataset import TarWriter

    root.mkdir(parents=True, exist_ok=True)
    urls = []
    for start in range(0, len(raws), 100):
        url = str(root / f"pax-{start // 100:06d}.tar")
        with open(url, "wb") as handle, TarWriter(handle, encoder=False, mtime=0.0) as tar:
            for raw in raws[start:start + 100]:
                tar.write({k: v for k, v in raw.items() if k != "__url__"})
        urls.append(url)
    return urls


def _wds_members(url: str) -> int:
    """Read one shard with webdataset's own streaming iterator (what the reader used before)."""
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    with open(url, "rb", buffering=1 << 20) as handle:
        return sum(1 for _ in group_by_keys({**f, "__url__": url} for f in tar_file_iterator(handle)))


def _drain(items: Any) -> None:
    collections.deque(items, maxlen=0)


def bench_stages(tmp: Path, rgbd: Path, count: int, crop: int, repeats: int = 11) -> None:
    """Per-stage CPU cost of both read paths in one process (no workers): what each sample pays."""
    from da_toolkit.data.shards.codec import decode_sample, read_info
    from da_toolkit.data.shards.stream import iter_shard

    blobs = _images(tmp / "stages_folder", rgbd, count)
    folder = ImageFolder(tmp / "stages_folder")
    index = _same_bytes_shards(folder, blobs, tmp / "stages_shards", 100)
    shards = ShardedImages(index=index, shuffle_buffer=256)
    urls = [u for u, _ in shards.shards]
    raws = [raw for u in urls for _, raw in iter_shard(u)]
    pax = _pax_shards(raws, tmp / "stages_pax")
    files = folder.files
    decoded = [folder[i] for i in range(min(count, 64))]
    transform = _drop_labels(TrainTransform(crop, flip=False))
    items = [transform(s) for s in decoded[:16]]
    rows = [  # each consumes its samples one by one (holding them all would time memory growth)
        ("folder: read_rgb(path) (open + decode)", lambda: _drain(read_rgb(f) for f in files)),
        ("folder: ImageFolder[i] (+ path checks, sample)", lambda: _drain(folder[i] for i in range(count))),
        ("shards: tar members (iter_shard)", lambda: _drain(r for u in urls for r in iter_shard(u))),
        ("  the same, shards with a PAX header per member", lambda: _drain(r for u in pax for r in iter_shard(u))),
        ("  the same, webdataset's streaming tar iterator", lambda: _drain(_wds_members(u) for u in urls)),
        ("shards: json member (read_info)", lambda: _drain(read_info(r, "x") for r in raws)),
        ("shards: decode_image(bytes)", lambda: _drain(decode_image(r["jpg"], "x") for r in raws)),
        ("shards: decode_sample (json + decode + sample)",
         lambda: _drain(decode_sample(r, source="s", where="x", labeled=False) for r in raws)),
        ("shards: ShardedImages iteration (all of it)", lambda: _drain(shards)),
        (f"both: TrainTransform crop {crop} (64 samples)", lambda: _drain(transform(s) for s in decoded)),
    ]
    rows.append(("both: collate_samples (per sample, batch 16)", lambda: _drain(collate_samples(items) for _ in range(4))))
    counts = {name: len(decoded) if name.startswith("both: TrainTransform") else count for name, _ in rows}
    counts["both: collate_samples (per sample, batch 16)"] = 4 * len(items)
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(repeats):  # rows interleaved, so that a change of load hits them alike
        for name, fn in rows:
            t0 = time.process_time()
            fn()
            times[name].append(time.process_time() - t0)
    print(f"\nper-stage CPU ms/sample, one process, {count} JPEG images (median of {repeats}, rows interleaved)")
    for name, _ in rows:
        print(f"  {name:<50}: {1e3 * statistics.median(times[name]) / counts[name]:7.3f}")


def bench_writers(tmp: Path, rgbd: Path, n: int) -> None:
    disps = _disparities(rgbd, (518, 518), 10)
    print(f"\nlabel writing at 518x518, {n} items, model excluded (items/s)")
    t0 = time.perf_counter()
    with PseudoLabelWriter(tmp / "store", "rank000", "sha256:x", {}) as w:
        for i in range(n):
            w.write(f"item{i}", {"path": f"{i}.jpg"}, disps[i % 10])
    a = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    with PseudoLabelShardWriter(str(tmp / "pshards"), "rank000", "sha256:x", {}, maxcount=100) as w:  # float16z
        for i in range(n):
            w.write(f"item{i}", {"path": f"{i}.jpg"}, disps[i % 10])
    b = n / (time.perf_counter() - t0)
    du_a = sum(p.stat().st_size for p in (tmp / "store").rglob("*") if p.is_file())
    du_b = sum(p.stat().st_size for p in (tmp / "pshards").rglob("*") if p.is_file())
    files_a = sum(1 for p in (tmp / "store").rglob("*") if p.is_file())
    files_b = sum(1 for p in (tmp / "pshards").rglob("*") if p.is_file())
    print(f"  file-per-item store : {a:8.1f} items/s, {du_a / n:9.0f} bytes/item, {files_a} files")
    print(f"  pseudo-label shards : {b:8.1f} items/s, {du_b / n:9.0f} bytes/item, {files_b} files")


def bench_job(tmp: Path, count: int, size: int) -> None:
    import warnings

    import lightning as L

    from da_toolkit.data.shards.prediction_writer import PseudoLabelShardCallback
    from da_toolkit.models.description import build_model, preset_description
    from da_toolkit.tasks.pseudo_label import (
        PseudoLabelStoreWriter,
        PseudoLabelTask,
        UnlabeledImages,
    )

    folder = ImageFolder(tmp / "folder", files=[f"{i:06d}.jpg" for i in range(count)])
    print(f"\npseudo-labelling job, tiny random teacher, {count} images at input {size}, batch 4, 0 workers (items/s)")
    for name, make in (("file-per-item store", lambda: PseudoLabelStoreWriter(str(tmp / "job_store"))),
                       ("pseudo-label shards", lambda: PseudoLabelShardCallback(str(tmp / "job_shards"), maxcount=100))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = PseudoLabelTask(build_model(preset_description("tiny")), allow_random_weights=True)
            data = UnlabeledImages([folder], input_size=size, batch_size=4)
            trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[make()])
            t0 = time.perf_counter()
            trainer.predict(task, datamodule=data, return_predictions=False)
            rate = count / (time.perf_counter() - t0)
        print(f"  {name:<20}: {rate:8.1f} items/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rgbd", type=Path, default=Path("/work/shared/data/rgbd"))
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 0], help="loader workers, one table row each")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per row (order alternating)")
    p.add_argument("--crop", type=int, default=518, help="training crop of the decode+crop+collate rows (0: no such rows)")
    p.add_argument("--read_only", action="store_true", help="only the read throughput and per-stage parts")
    p.add_argument("--json", type=Path, default=None, help="write the read-throughput records (raw rounds) here")
    p.add_argument("--write_items", type=int, default=200)
    p.add_argument("--litdata", action="store_true", help="also measure litdata's StreamingDataset")
    p.add_argument("--job", action="store_true", help="also time a pseudo-labelling job with each writer")
    p.add_argument("--job_items", type=int, default=100)
    p.add_argument("--job_size", type=int, default=140)
    args = p.parse_args()
    # one torch thread in this process too, as in loader workers: the 0-worker rows and the per-stage
    # timings then measure the per-sample cost, not torch's intra-op threads competing on a shared machine
    torch.set_num_threads(1)
    print("load before:", _uptime())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.read_only:
            bench_bytes(args.rgbd)
        records = bench_read(tmp, args.rgbd, args.count, args.workers, args.litdata, repeats=args.repeats,
                             crop=args.crop)
        if args.json is not None:
            args.json.write_text(json.dumps({"count": args.count, "repeats": args.repeats, "read": records}, indent=1))
        bench_stages(tmp, args.rgbd, min(args.count, 200), args.crop or 518)
        if not args.read_only:
            bench_writers(tmp, args.rgbd, args.write_items)
        if args.job and not args.read_only:
            bench_job(tmp, min(args.job_items, args.count), args.job_size)
    print("load after:", _uptime())


if __name__ == "__main__":
    main()
