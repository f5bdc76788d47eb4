"""Sharded data: pseudo-label bytes and accuracy, streaming read throughput, label-writing rate.

Prints (with the machine's ``uptime`` load before and after):

* **bytes per pseudo-label** at 518x518 and 1000x750 for the file-per-item store (float16
  ``.npy``, today's default), compressed float16 (``np.savez_compressed``) and the shard
  encoding (16-bit PNG + per-image range), and each one's deviation from float32 (max |error|
  relative to the image's disparity range, and the 99th percentile of |error| / disparity).
  Disparities are dense real ones: ICL-NUIM depth frames from ``--rgbd`` (1 / depth, resized);
* **read throughput** (samples/s through a 2-worker loader, images decoded): the folder source
  (``ImageFolder`` + ``SafeDataset``) vs the shard source (``ShardedImages`` + ``ShardLoader``)
  on the same JPEG images, and litdata's ``StreamingDataset`` on them (``--litdata``);
* **label writing** (items/s, model excluded): ``PseudoLabelWriter`` (one fsync'd ``.npy`` per
  item + manifest line) vs ``PseudoLabelShardWriter`` at 518x518;
* **pseudo-labelling job** (items/s, ``--job``): ``PseudoLabelTask`` with a tiny random teacher
  (``tiny`` preset) predicting the JPEG images at ``--job_size``, written by the file-store
  callback vs ``PseudoLabelShardCallback``.

    python benchmarks/bench_shards.py --count 400 --workers 2 --litdata
"""

from __future__ import annotations

import argparse
import io
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from da_toolkit.data.io import read_png_uint16, read_rgb
from da_toolkit.data.pseudo_store import PseudoLabelWriter
from da_toolkit.data.robust import SafeDataset
from da_toolkit.data.shards import ShardedImages, ShardLoader
from da_toolkit.data.shards.codec import (
    decode_disparity,
    decode_disparity_f16z,
    encode_disparity,
    encode_disparity_f16z,
)
from da_toolkit.data.shards.convert import pack_source
from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter
from da_toolkit.data.sources.folders import ImageFolder


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


def _images(root: Path, rgbd: Path, count: int) -> list[Path]:
    frames = sorted((rgbd / "7scenes_redkitchen" / "rgb").glob("*.jpg"))
    frames += sorted((rgbd / "icl_nuim_livingroom1_synthetic" / "rgb").glob("*.jpg"))
    pix = [read_rgb(f) for f in frames]
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        p = root / f"{i:06d}.jpg"
        Image.fromarray(pix[i % len(pix)]).save(p, quality=95)
        files.append(p)
    return files


def _ids(batch: list) -> int:
    return len(batch)


def _rate_of(loader: Any, epochs: int = 2) -> float:
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for b in loader:
            n += b
    return n / (time.perf_counter() - t0)


def _identity(sample: Any) -> Any:
    return sample


def _count(batch: list) -> int:
    return len(batch)


def _decode_litdata(item: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(item["jpg"])).convert("RGB"))


def bench_read(tmp: Path, rgbd: Path, count: int, workers: int, litdata: bool, repeats: int = 5) -> None:
    files = _images(tmp / "folder", rgbd, count)
    folder = ImageFolder(tmp / "folder")
    pack_source(folder, str(tmp / "shards"), prefix="img", maxcount=100, image_format="jpg", progress=False)
    shards = ShardedImages(index=str(tmp / "shards" / "img.index.json"), shuffle_buffer=64)
    fl = DataLoader(SafeDataset(folder, _identity), batch_size=16, shuffle=True, num_workers=workers, collate_fn=_count)
    sl = ShardLoader(shards, batch_size=16, num_workers=workers, collate_fn=_count)
    print(f"\nread throughput, {count} JPEG images {read_rgb(files[0]).shape[1]}x{read_rgb(files[0]).shape[0]}, "
          f"{workers} workers, batch 16, 2 epochs (samples/s, best of {repeats}, the two sources interleaved)")
    rates: dict[str, list[float]] = {"folder": [], "shards": []}
    for _ in range(repeats):  # interleaved, so that a change of machine load hits both alike
        rates["folder"].append(_rate_of(fl))
        rates["shards"].append(_rate_of(sl))
    fr, sr = max(rates["folder"]), max(rates["shards"])
    print(f"  folder source (ImageFolder)   : {fr:8.1f}")
    print(f"  shard source (ShardedImages)  : {sr:8.1f}   ratio shards/folder {sr / fr:.2f}")
    ratios = [s / f for s, f in zip(rates["shards"], rates["folder"], strict=True)]
    print(f"  per-round ratios shards/folder: {' '.join(f'{r:.2f}' for r in ratios)}")
    if litdata:
        from litdata import StreamingDataLoader, StreamingDataset, optimize

        out = tmp / "litdata"
        optimize(fn=_lit_item, inputs=[str(f) for f in files], output_dir=str(out), chunk_bytes="64MB",
                 num_workers=1, verbose=False)
        ds = StreamingDataset(str(out), shuffle=True, transform=_decode_litdata)
        ll = StreamingDataLoader(ds, batch_size=16, num_workers=workers, collate_fn=_count)
        lr = max(_rate_of(ll) for _ in range(repeats))
        print(f"  litdata StreamingDataset      : {lr:8.1f}   (its own chunk format, needs conversion)")


def _lit_item(path: str) -> dict:
    return {"jpg": Path(path).read_bytes(), "id": Path(path).stem}


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
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--write_items", type=int, default=200)
    p.add_argument("--litdata", action="store_true", help="also measure litdata's StreamingDataset")
    p.add_argument("--job", action="store_true", help="also time a pseudo-labelling job with each writer")
    p.add_argument("--job_items", type=int, default=100)
    p.add_argument("--job_size", type=int, default=140)
    args = p.parse_args()
    print("load before:", _uptime())
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_bytes(args.rgbd)
        bench_read(tmp, args.rgbd, args.count, args.workers, args.litdata)
        bench_writers(tmp, args.rgbd, args.write_items)
        if args.job:
            bench_job(tmp, min(args.job_items, args.count), args.job_size)
    print("load after:", _uptime())


if __name__ == "__main__":
    main()
