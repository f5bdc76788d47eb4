"""A prepared GPU check, one command (issue 15.3): ``python benchmarks/gpu_check.py [--out gpu.json]``.

On one GPU (about 8 minutes at the defaults) it measures, with random weights and synthetic data:

1. ``fit``: the full student recipe (``StudentTask`` with strong perturbation, CutMix, the
   CutMix-aware loss, feature alignment to a frozen encoder, AdamW; labeled + pseudo-labeled 1:2,
   4 + 8 images per step, 518 crops) at ViT-S and ViT-B size in ``bf16-mixed``, without and with
   ``torch.compile`` (``nn.Module.compile`` of the student and the frozen encoder): steps/s after
   the warm-up steps, peak GPU memory;
2. ``max_batch``: the largest labeled batch (pseudo-labeled = 2x) whose training step fits, at
   both sizes (doubling, then bisecting, until out of memory);
3. ``pseudo_label``: ``da-toolkit pseudo-label`` vs ``Predictor`` on a few thousand synthetic
   518x518 PNGs (``bench_pseudo_label.py``): images/s, ratio, decode throughput;
4. ``predict``: ``Predictor`` vs ``transformers.DepthAnythingForDepthEstimation`` (same weights:
   our model written with da-toolkit's HF-folder saver and loaded by transformers) at 518x518,
   fp16 and bf16, batched: images/s, peak GPU memory, deviation from the fp32 output.

``--tiny`` runs every part on the CPU with the tiny preset at 56x56 and a handful of steps and
images (seconds; ``tests/benchmarks/test_benchmarks_run.py`` runs it so it never rots).
Writes everything as JSON to ``--out`` and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pseudo_label
import bench_training
from bench_cpu_paths import TINY_HF

#: GPU settings (defaults) and the --tiny CPU settings
FULL = {"sizes": {"vits": "depth-anything-v2-vits", "vitb": "depth-anything-v2-vitb"}, "crop": 518, "batch": 4,
        "steps": 150, "warmup": 10, "compile": [False, True], "precision": "bf16-mixed",
        "max_batch_cap": 128, "pl_images": 1500, "pl_batch": 32, "pl_workers": 8,
        "teacher": "depth-anything-v2-vitl", "pred_images": 128, "pred_batch": 32, "size": 518,
        "pred_precisions": ["16-mixed", "bf16-mixed", "bf16-true"]}
TINY = {"sizes": {"tiny": "tiny"}, "crop": 56, "batch": 2, "steps": 3, "warmup": 1, "compile": [False],
        "precision": "bf16-mixed", "max_batch_cap": 4, "pl_images": 6, "pl_batch": 2, "pl_workers": 0,
        "teacher": "tiny", "pred_model": TINY_HF, "pred_images": 4, "pred_batch": 2, "size": 56, "pred_precisions": ["bf16-mixed"]}


class SmoothSamples(Dataset):
    """Cheap synthetic samples (smooth image + matching disparity), generated once, in memory.

    ``image`` uint8 ``(H,W,3)``, ``depth`` float32 ``(H,W)`` (metric-like, > 0), ``valid``,
    ``depth_kind``, ``meta`` - the sample contract of the data sources.
    """

    def __init__(self, n: int, size: tuple[int, int], seed: int, kind: str = "metric") -> None:
        rng = np.random.default_rng(seed)
        h, w = size
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        self.samples = []
        for i in range(n):
            a, b = rng.uniform(0.2, 1.0, 2)
            img = np.stack([a * xx / w, b * yy / h, 1 - xx / w * yy / h], -1)
            img = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
            depth = (1.0 + 4.0 * img.mean(-1)).astype(np.float32)
            self.samples.append({
                "image": (img * 255).astype(np.uint8), "depth": depth, "valid": np.ones((h, w), bool),
                "depth_kind": kind, "meta": {"source": "smooth", "id": f"{seed}-{i}",
                                             "image_ref": {"source": "smooth", "index": i}},
            })

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self.samples[index]
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}


def student_data(crop: int, batch: int, n_labeled: int, workers: int) -> Any:
    from da_toolkit.data.student_datamodule import StudentDataModule

    size = (crop + 14, crop + 70)
    return StudentDataModule(labeled=[SmoothSamples(n_labeled, size, 0)],
                             pseudo_labeled=[SmoothSamples(2 * n_labeled, size, 1, kind="relative")],
                             crop_size=crop, batch_size=batch, unlabeled_ratio=2, num_workers=workers,
                             persistent_workers=workers > 0, seed=0)


def gpu() -> bool:
    return torch.cuda.is_available()


def reset_peak() -> None:
    if gpu():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if gpu() else None


def sync() -> None:
    if gpu():
        torch.cuda.synchronize()


def fit_part(cfg: dict[str, Any], workdir: str) -> list[dict[str, Any]]:
    """Steps/s and peak memory of the student recipe per model size, with/without compile."""
    rows = []
    accelerator = "gpu" if gpu() else "cpu"
    for label, preset in cfg["sizes"].items():
        for compiled in cfg["compile"]:
            row: dict[str, Any] = {"size": label, "preset": preset, "compile": compiled,
                                   "precision": cfg["precision"], "crop": cfg["crop"],
                                   "labeled_batch": cfg["batch"], "unlabeled_batch": 2 * cfg["batch"]}
            task = None
            try:
                task = bench_training.make_task({"preset": preset})
                if compiled:
                    task.model.compile()
                    task.frozen_encoder.compile()
                data = student_data(cfg["crop"], cfg["batch"], cfg["batch"] * 8, 4 if gpu() else 0)
                reset_peak()
                t = time.perf_counter()
                wall, _ = bench_training.lightning_steps(task, data, cfg["steps"], cfg["warmup"], workdir,
                                                         precision=cfg["precision"], accelerator=accelerator)
                row["total_s"] = time.perf_counter() - t
                row["step_seconds"] = wall
                row["steps"] = len(wall)
                row["steps_per_s"] = len(wall) / sum(wall)
                row["images_per_s"] = row["steps_per_s"] * 3 * cfg["batch"]
                row["peak_gib"] = peak_gib()
            except Exception as exc:  # noqa: BLE001 - one failing configuration must not hide the others
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                traceback.print_exc()
            rows.append(row)
            print(f"fit {row}", flush=True)
            del task
            reset_peak()
    return rows


def _step_fits(preset: str, batch: int, crop: int, precision: str) -> bool:
    """Whether one full student training step at ``batch`` labeled (+ 2x pseudo) images fits."""
    from da_toolkit.tasks.optim import build_optimizer, param_groups  # noqa: F401 - same groups as fit

    device = torch.device("cuda" if gpu() else "cpu")
    task = bench_training.make_task({"preset": preset}).to(device).train()
    opt = torch.optim.AdamW([p for p in task.model.parameters() if p.requires_grad], lr=1e-6)
    g = torch.Generator().manual_seed(0)
    b = {"labeled": {"image": torch.rand(batch, 3, crop, crop, generator=g),
                     "depth": 1 + torch.rand(batch, crop, crop, generator=g),
                     "valid": torch.ones(batch, crop, crop, dtype=torch.bool), "depth_kind": ["metric"] * batch},
         "unlabeled": {"image": torch.rand(2 * batch, 3, crop, crop, generator=g),
                       "depth": torch.rand(2 * batch, crop, crop, generator=g),
                       "valid": torch.ones(2 * batch, crop, crop, dtype=torch.bool)}}
    b = bench_training.to_device(b, device)
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16
    try:
        with torch.autocast(device.type, dtype=dtype):
            loss, _, _ = task.compute_loss(b)
        loss.backward()
        opt.step()
        sync()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del task, opt, b
        reset_peak()


def max_batch_part(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Largest labeled batch (pseudo-labeled = 2x) whose training step fits, per model size."""
    rows = []
    for label, preset in cfg["sizes"].items():
        lo, hi, b = 0, None, 1
        while b <= cfg["max_batch_cap"]:
            if _step_fits(preset, b, cfg["crop"], cfg["precision"]):
                lo, b = b, 2 * b
            else:
                hi = b
                break
        if hi is not None:
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _step_fits(preset, mid, cfg["crop"], cfg["precision"]) else (lo, mid)
        row = {"size": label, "preset": preset, "crop": cfg["crop"], "precision": cfg["precision"],
               "largest_labeled_batch": lo, "capped": hi is None, "cap": cfg["max_batch_cap"]}
        rows.append(row)
        print(f"max batch {row}", flush=True)
    return rows


def pseudo_label_part(cfg: dict[str, Any]) -> dict[str, Any]:
    device = "cuda" if gpu() else "cpu"
    precision = "bf16-mixed" if gpu() else "32"
    res = bench_pseudo_label.run_benchmark(cfg["pl_images"], cfg["size"], cfg["teacher"], cfg["pl_batch"],
                                           cfg["pl_workers"], precision, reps=1, device=device)
    print(bench_pseudo_label.format_result(res), flush=True)
    return res


@contextlib.contextmanager
def _no_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def predict_part(cfg: dict[str, Any], workdir: str) -> dict[str, Any]:
    """Predictor vs transformers (same weights) at ``size``, fp16/bf16, batched."""
    from transformers import DepthAnythingForDepthEstimation

    from da_toolkit.inference import Predictor
    from da_toolkit.models.description import build_model
    from da_toolkit.models.preprocess import prepare_image
    from da_toolkit.models.weights import save_hf_folder

    device = torch.device("cuda" if gpu() else "cpu")
    preset = cfg.get("pred_model", "depth-anything-v2-vits")
    size, n, bs = cfg["size"], cfg["pred_images"], cfg["pred_batch"]
    torch.manual_seed(0)
    ours = build_model(preset).eval()
    folder = Path(workdir) / "hf"
    save_hf_folder(ours, folder)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    pixel_values = torch.cat([prepare_image(im, size, multiple=14) for im in images])
    out: dict[str, Any] = {"preset": preset, "size": size, "images": n, "batch_size": bs, "rows": []}

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        fn()  # warm-up
        sync()
        t = time.perf_counter()
        res = fn()
        sync()
        return time.perf_counter() - t, res

    with torch.inference_mode():
        ref_model = DepthAnythingForDepthEstimation.from_pretrained(str(folder)).to(device).eval()
        ref = torch.cat([ref_model(pixel_values=pixel_values[i:i + bs].to(device)).predicted_depth.float().cpu()
                         for i in range(0, n, bs)]).numpy()
        del ref_model
    mean_ref = float(np.abs(ref).mean())
    for dtype_name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        for attn in ("eager",):  # transformers 5.x: this model has no SDPA attention implementation
            reset_peak()
            try:
                with _no_warnings():
                    hf = DepthAnythingForDepthEstimation.from_pretrained(str(folder), dtype=dtype,
                                                                         attn_implementation=attn).to(device).eval()

                def run_hf(hf: Any = hf, dtype: torch.dtype = dtype) -> np.ndarray:
                    with torch.inference_mode():
                        return torch.cat([hf(pixel_values=pixel_values[i:i + bs].to(device, dtype)).predicted_depth
                                          .float().cpu() for i in range(0, n, bs)]).numpy()

                secs, res = timed(run_hf)
                row = {"name": f"transformers {dtype_name} {attn} (network only)", "images_per_s": n / secs,
                       "peak_gib": peak_gib(), "deviation": float(np.abs(res - ref).mean()) / mean_ref}
                del hf
            except Exception as exc:  # noqa: BLE001
                row = {"name": f"transformers {dtype_name} {attn}", "error": f"{type(exc).__name__}: {exc}"[:300]}
            out["rows"].append(row)
            print(f"predict {row}", flush=True)
    for precision in cfg["pred_precisions"]:
        for compiled in ([False, True] if gpu() else [False]):
            reset_peak()
            try:
                pred = Predictor(ours, precision=precision, compile=compiled, batch_size=bs, input_size=size,
                                 device=device, progress=False, num_workers=0, speed_check=False)
                secs, res = timed(lambda pred=pred: pred.predict(images))
                dev = float(np.mean([np.abs(a - b).mean() for a, b in zip(res, ref, strict=True)])) / mean_ref
                row = {"name": f"Predictor {precision}{' compile' if compiled else ''} (incl. pre/post-processing)",
                       "images_per_s": n / secs, "peak_gib": peak_gib(), "deviation": dev}
            except Exception as exc:  # noqa: BLE001
                row = {"name": f"Predictor {precision}{' compile' if compiled else ''}",
                       "error": f"{type(exc).__name__}: {exc}"[:300]}
            out["rows"].append(row)
            print(f"predict {row}", flush=True)
    return out


def device_name() -> str:
    if gpu():
        p = torch.cuda.get_device_properties(0)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny settings on the CPU (seconds)")
    p.add_argument("--parts", nargs="+", default=["fit", "max_batch", "pseudo_label", "predict"],
                   choices=["fit", "max_batch", "pseudo_label", "predict"])
    p.add_argument("--steps", type=int, default=None, help="timed fit steps (default 150; --tiny 3)")
    p.add_argument("--pl-images", type=int, default=None, help="pseudo-label images (default 1500)")
    p.add_argument("--out", default="gpu_check.json")
    args = p.parse_args(argv)
    cfg = dict(TINY if args.tiny else FULL)
    if args.steps:
        cfg["steps"] = args.steps
    if args.pl_images:
        cfg["pl_images"] = args.pl_images
    if not args.tiny and not gpu():
        print("gpu_check: no CUDA device; use --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    if gpu():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    result: dict[str, Any] = {"device": device_name(), "torch": torch.__version__, "tiny": args.tiny,
                              "settings": {k: v for k, v in cfg.items()}}
    print(f"gpu_check on {result['device']}, torch {torch.__version__}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as workdir:
        for part in args.parts:
            t = time.perf_counter()
            try:
                if part == "fit":
                    result["fit"] = fit_part(cfg, workdir)
                elif part == "max_batch":
                    result["max_batch"] = max_batch_part(cfg)
                elif part == "pseudo_label":
                    result["pseudo_label"] = pseudo_label_part(cfg)
                else:
                    result["predict"] = predict_part(cfg, workdir)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other parts
                traceback.print_exc()
                result[part] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            result.setdefault("part_seconds", {})[part] = time.perf_counter() - t
            Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    result["total_seconds"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps(result, indent=1, default=str))
    print(f"gpu_check: done in {result['total_seconds']:.0f} s; figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
