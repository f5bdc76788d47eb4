"""Pseudo-labelling benchmark: ``da-toolkit pseudo-label`` vs ``Predictor`` on the same image files,
model and precision, side by side in one process (issue 15.2).

1. writes ``--images`` synthetic RGB images (``--size`` square, PNG) to a temporary folder and a
   teacher with random weights (``--preset``) as a self-describing safetensors file;
2. ``pseudo-label``: :func:`da_toolkit.cli.pseudo_label.run` (the command's code path: LightningCLI
   parse, ``PseudoLabelTask`` + ``UnlabeledImages`` + the store writer, Lightning's predict loop,
   float16 ``.npy`` writes + manifest) into a fresh store, timed end to end, images/s;
3. ``Predictor``: :class:`da_toolkit.inference.Predictor` on the same paths (decoding included,
   results kept in memory, nothing written), same model file, precision, batch size, workers;
4. the two alternate ``--reps`` times; medians. Ratio = pseudo-label images/s / Predictor images/s
   (goal >= 0.9);
5. decode throughput (``ImageFolder`` read + official preprocessing through a DataLoader with
   0 and ``--workers`` workers) against model throughput (forward of prepared batches alone), and
   the cost of a resume over a finished store (every image skipped);
6. output formats side by side (``--formats-reps`` runs each, alternating which goes first):
   ``pseudo-label --format files`` against ``--format shards`` (labels + images in tar shards)
   on the same images, with the wall time per item of each phase measured inside the run
   (:class:`PhaseTimer`; phases nest: ``writer`` includes ``label encode+write``, ``data``
   includes ``image encode``; the shard writer's encoding, tar append and finalising run in its
   encoder thread, beside the model), and ``--profile PATH`` for cProfile stats of the last runs.

Run: ``python benchmarks/bench_pseudo_label.py [--preset depth-anything-v2-vits --size 518]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_timing import load_average  # noqa: E402


def write_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """``n`` smooth synthetic ``size x size`` RGB PNGs (gradients, discs, noise) in ``folder``."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = np.stack([xx * rng.uniform(0.3, 1), yy * rng.uniform(0.3, 1), (1 - xx) * (1 - yy)], -1)
        for _ in range(4):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.25)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = rng.uniform(0, 1, 3)
        img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
        path = folder / f"img_{i:05d}.png"
        Image.fromarray((img * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def write_teacher(path: Path, preset: str) -> Any:
    """A random-weight teacher of ``preset`` saved self-describing; returns the loaded model."""
    from da_toolkit import load_model
    from da_toolkit.models.weights import save_weights

    torch.manual_seed(0)
    save_weights(load_model(preset), path)
    return load_model(str(path)).eval()


TRAINER_PRECISION = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed", "bf16-true": "bf16-true"}


def pseudo_label_once(images: Path, teacher: Path, store: Path, cfg: dict[str, Any], workdir: Path,
                      fmt: str = "files") -> tuple[float, int]:
    """One ``pseudo-label`` run into ``store`` (``--format fmt``): (wall seconds, items written)."""
    import yaml

    from da_toolkit.cli.pseudo_label import run

    config = {
        "store": str(store), "format": fmt,
        "trainer": {"accelerator": cfg["accelerator"], "devices": 1, "precision": TRAINER_PRECISION[cfg["precision"]],
                    "enable_progress_bar": False, "logger": False},
        "model": {"teacher": str(teacher)},
        "data": {"sources": [{"class_path": "image_folder", "init_args": {"root": str(images)}}],
                 "input_size": cfg["size"], "batch_size": cfg["batch_size"], "num_workers": cfg["workers"]},
    }
    path = workdir / f"pl_{store.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run(["--config", str(path)])
    return time.perf_counter() - t, int(out["written"])


class PhaseTimer:
    """Wall seconds spent inside chosen functions/methods, summed per phase name (main process only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def patch(self, targets: list[tuple[Any, str, str]]) -> Any:
        """Time ``owner.attr`` as phase ``name`` for each ``(owner, attr, name)`` while inside."""
        saved = []
        for owner, attr, name in targets:
            original = getattr(owner, attr)

            def timed(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
                t = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_name] = self.seconds.get(_name, 0.0) + time.perf_counter() - t

            setattr(owner, attr, timed)
            saved.append((owner, attr, original))
        try:
            yield self
        finally:
            for owner, attr, original in reversed(saved):
                setattr(owner, attr, original)


def _phase_targets(fmt: str) -> list[tuple[Any, str, str]]:
    """What to time in a run of ``fmt``: the model step, the writer callback and its parts, the
    items' preparation (image decode + preprocessing + image encoding with 0 workers)."""
    import da_toolkit.data.pseudo_store as store_mod
    import da_toolkit.data.shards.codec as codec
    import da_toolkit.data.shards.pseudo as pseudo_mod
    import da_toolkit.tasks.pseudo_label as task_mod
    from da_toolkit.data.shards.writer import ShardWriter
    from da_toolkit.tasks.pseudo_label_data import _PreparedItems

    common = [(task_mod.PseudoLabelTask, "predict_step", "model step"), (_PreparedItems, "__getitem__", "data"),
              (codec, "encode_image", "image encode")]
    if fmt == "files":
        return [*common, (task_mod.PseudoLabelStoreWriter, "write_on_batch_end", "writer"),
                (store_mod, "atomic_save_npy", "label encode+write")]
    return [*common, (task_mod.PseudoLabelShardStoreWriter, "write_on_batch_end", "writer"),
            (task_mod.PseudoLabelShardStoreWriter, "teardown", "writer"),
            (pseudo_mod, "encode_disparity_f16z", "label encode+write"), (ShardWriter, "write", "tar append"),
            (ShardWriter, "flush", "shard finalise")]


def _store_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in store.rglob("*") if p.is_file())


def files_vs_shards(images: Path, teacher: Path, cfg: dict[str, Any], reps: int, n: int, workdir: Path,
                    profile: Path | None = None) -> dict[str, Any]:
    """``pseudo-label --format files`` against ``--format shards`` (images stored, the default) on
    the same images, alternating which goes first; per-phase seconds per item from :class:`PhaseTimer`."""
    out: dict[str, Any] = {"files": [], "shards": []}
    for r in range(reps):
        for fmt in (("files", "shards") if r % 2 == 0 else ("shards", "files")):
            timer = PhaseTimer()
            store = workdir / f"fvs_{fmt}_{r}"
            with timer.patch(_phase_targets(fmt)):
                if profile is not None and r == reps - 1:
                    import cProfile

                    prof = cProfile.Profile()
                    secs, written = prof.runcall(pseudo_label_once, images, teacher, store, cfg, workdir, fmt)
                    prof.dump_stats(str(profile.with_suffix(f".{fmt}.prof")))
                else:
                    secs, written = pseudo_label_once(images, teacher, store, cfg, workdir, fmt)
            if written != n:
                raise RuntimeError(f"pseudo-label --format {fmt} wrote {written} of {n} images")
            out[fmt].append({"s": secs, "bytes_per_item": _store_bytes(store) / n,
                             "phases_ms_per_item": {k: 1e3 * v / n for k, v in sorted(timer.seconds.items())}})
    for fmt in ("files", "shards"):
        runs = out[fmt]
        out[f"{fmt}_img_s"] = n / statistics.median(r["s"] for r in runs)
        out[f"{fmt}_phases_ms"] = {k: statistics.median(r["phases_ms_per_item"].get(k, 0.0) for r in runs)
                                   for k in runs[0]["phases_ms_per_item"]}
    out["shards_over_files"] = out["shards_img_s"] / out["files_img_s"]
    return out


def predictor_once(model: Any, paths: list[Path], cfg: dict[str, Any]) -> tuple[float, list[np.ndarray]]:
    """One ``Predictor.predict`` over the same files: (wall seconds, outputs)."""
    from da_toolkit.inference import Predictor

    pred = Predictor(model, precision=cfg["precision"], batch_size=cfg["batch_size"], input_size=cfg["size"],
                     num_workers=cfg["workers"], progress=False, speed_check=False, device=cfg["device"])
    t = time.perf_counter()
    out = pred.predict([str(p) for p in paths])
    return time.perf_counter() - t, out


def decode_throughput(images: Path, size: int, multiple: int, workers: int, limit: int) -> float:
    """Images/s of reading + preprocessing (the pseudo-label loader's per-item work) with ``workers``."""
    from torch.utils.data import DataLoader

    from da_toolkit.data.sources.folders import ImageFolder
    from da_toolkit.tasks.pseudo_label import _collate, _PreparedItems

    data = _PreparedItems(ImageFolder(str(images)), size, multiple, done=set())
    n = min(limit, len(data))
    subset = torch.utils.data.Subset(data, range(n))
    loader = DataLoader(subset, batch_size=1, num_workers=workers, collate_fn=_collate)
    t = time.perf_counter()
    for _ in loader:
        pass
    return n / (time.perf_counter() - t)


def model_throughput(model: Any, size: int, batch_size: int, precision: str, device: str, reps: int = 2) -> float:
    """Images/s of the teacher's forward alone on prepared ``size x size`` batches."""
    from da_toolkit.inference.runner import precision_context

    dev = torch.device(device)
    m = model.to(dev).eval()
    x = torch.rand(batch_size, 3, size, size, device=dev)
    if precision == "bf16-true":
        m, x = m.to(torch.bfloat16), x.to(torch.bfloat16)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.inference_mode(), precision_context(precision, dev):
        m(x)
        sync()
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            m(x)
            sync()
            best = min(best, time.perf_counter() - t)
    if precision == "bf16-true":
        model.float()
    return batch_size / best


def run_benchmark(images_n: int, size: int, preset: str, batch_size: int, workers: int, precision: str,
                  reps: int, device: str = "cpu", formats_reps: int = 0, profile: Path | None = None) -> dict[str, Any]:
    """Measure everything; returns the figures."""
    from da_toolkit.models.inference_core import input_multiple

    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    cfg = {"size": size, "batch_size": batch_size, "workers": workers, "precision": precision,
           "accelerator": accelerator, "device": device}
    res: dict[str, Any] = {"images": images_n, "size": size, "preset": preset, "batch_size": batch_size,
                           "workers": workers, "precision": precision, "device": device, "reps": reps,
                           "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="bench_pl_") as tmp:
        root = Path(tmp)
        paths = write_images(root / "images", images_n, size)
        teacher = root / "teacher.safetensors"
        model = write_teacher(teacher, preset)
        pl_s, pr_s = [], []
        outputs: list[np.ndarray] = []
        for r in range(-1, reps):  # rep -1: warm-up of both (not counted)
            secs, written = pseudo_label_once(root / "images", teacher, root / f"store{r + 1}", cfg, root)
            if written != images_n:
                raise RuntimeError(f"pseudo-label wrote {written} of {images_n} images")
            secs_p, outputs = predictor_once(model, paths, cfg)
            if r >= 0:
                pl_s.append(secs)
                pr_s.append(secs_p)
        res["store_matches_predictor"] = _compare_store(root / f"store{reps}", outputs, paths)
        resume_s, written = pseudo_label_once(root / "images", teacher, root / f"store{reps}", cfg, root)
        res["resume_finished_store_s"] = resume_s
        res["resume_written"] = written
        mult = int(input_multiple(model))
        if formats_reps:
            res["files_vs_shards"] = files_vs_shards(root / "images", teacher, cfg, formats_reps, images_n, root,
                                                     profile)
        res["decode_img_s"] = {str(w): decode_throughput(root / "images", size, mult, w, images_n)
                               for w in sorted({0, workers})}
    res["model_img_s"] = model_throughput(model, (size // mult) * mult if size % mult == 0 else
                                          -(-size // mult) * mult, batch_size, precision, device)
    res["pseudo_label_s"] = pl_s
    res["predictor_s"] = pr_s
    res["pseudo_label_img_s"] = images_n / statistics.median(pl_s)
    res["predictor_img_s"] = images_n / statistics.median(pr_s)
    res["ratio"] = res["pseudo_label_img_s"] / res["predictor_img_s"]
    res["load_after"] = load_average()
    return res


def _compare_store(store: Path, outputs: list[np.ndarray], paths: list[Path]) -> float:
    """Max |store - Predictor| / max |Predictor| over all images (float16 storage: ~1e-3)."""
    from da_toolkit.data.sources.pseudo import PseudoLabelSource

    src = PseudoLabelSource(str(store))
    by_id = {}
    for i in range(len(src)):
        s = src[i]
        by_id[Path(s["meta"]["image_ref"]["path"]).name] = s["depth"]
    worst = 0.0
    for p, o in zip(paths, outputs, strict=True):
        d = np.asarray(by_id[p.name], dtype=np.float64)
        worst = max(worst, float(np.abs(d - o).max() / max(np.abs(o).max(), 1e-12)))
    return worst


def format_result(r: dict[str, Any]) -> str:
    dec = ", ".join(f"{w} workers {v:.1f} img/s" for w, v in r["decode_img_s"].items())
    return "\n".join([
        (f"{r['images']} images {r['size']}x{r['size']}, {r['preset']}, {r['precision']}, batch {r['batch_size']}, "
        f"{r['workers']} workers, {r['device']}, {r['reps']} reps; load {r['load_before']} -> {r['load_after']}"),
        "| path | images/s (median) | runs (s) |", "| --- | --- | --- |",
        (f"| da-toolkit pseudo-label (incl. startup, writes) | {r['pseudo_label_img_s']:.3f} | "
        f"{', '.join(f'{s:.2f}' for s in r['pseudo_label_s'])} |"),
        (f"| Predictor (same files, no writes) | {r['predictor_img_s']:.3f} | "
        f"{', '.join(f'{s:.2f}' for s in r['predictor_s'])} |"),
        f"ratio pseudo-label / Predictor: {r['ratio']:.3f} (goal >= 0.9: {'MET' if r['ratio'] >= 0.9 else 'NOT met'})",
        f"store vs Predictor: max relative difference {r['store_matches_predictor']:.2e} (float16 store)",
        f"decode + preprocess: {dec}; model forward alone: {r['model_img_s']:.1f} img/s",
        f"resume over the finished store: {r['resume_finished_store_s']:.2f} s, wrote {r['resume_written']}",
        *(_format_formats(r["files_vs_shards"], r["workers"]) if "files_vs_shards" in r else []),
    ])


def _format_formats(f: dict[str, Any], workers: int) -> list[str]:
    names = sorted(set(f["files_phases_ms"]) | set(f["shards_phases_ms"]))
    rows = ["", f"output formats side by side ({len(f['files'])} runs each, alternating; ms/item per phase, main "
            f"process{'' if workers == 0 else f', data phases run in {workers} loader workers'}; for shards, "
            "label encode+write, tar append and shard finalise run in the writer's encoder thread)",
            "| output | items/s (median) | runs (s) | bytes/item | " + " | ".join(names) + " |",
            "| --- | --- | --- | --- |" + " --- |" * len(names)]
    for fmt, label in (("files", "--format files (npy + manifest)"), ("shards", "--format shards (images stored)")):
        phases = f[f"{fmt}_phases_ms"]
        runs = ", ".join(f"{r['s']:.2f}" for r in f[fmt])
        rows.append(f"| {label} | {f[f'{fmt}_img_s']:.3f} | {runs} | "
                    f"{statistics.median(r['bytes_per_item'] for r in f[fmt]):,.0f} | "
                    + " | ".join(f"{phases[k]:.1f}" if k in phases else "-" for k in names) + " |")
    rows.append(f"ratio shards / files: {f['shards_over_files']:.3f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--size", type=int, default=518)
    p.add_argument("--preset", default="depth-anything-v2-vits")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--precision", default="32", choices=list(TRAINER_PRECISION))
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--formats-reps", type=int, default=1,
                   help="runs of --format files and --format shards each (0: skip the comparison)")
    p.add_argument("--profile", default=None, help="write cProfile stats of the last files/shards runs to PATH.<fmt>.prof")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = run_benchmark(args.images, args.size, args.preset, args.batch_size, args.workers, args.precision,
                      args.reps, args.device, args.formats_reps, Path(args.profile) if args.profile else None)
    print(format_result(r), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
