"""Faster CPU paths: candidates vs transformers fp32 (batch 1 and batched), in CPU seconds (issue 15.4).

One process, one random-weight Depth Anything V2-Small (``depth-anything-v2-vits``, seed 0) written
with da-toolkit's Hugging Face folder saver and loaded into
``transformers.DepthAnythingForDepthEstimation`` (fp32, eager attention): the baseline, batch 1 and
batch ``--batch-size``. Every candidate sees the same preprocessed ``--size`` x ``--size`` network
input (pre/post-processing excluded on every side: this compares the networks) and is timed in
CPU seconds of this process per image (``time.process_time``: all threads, insensitive to other
jobs' load, unlike wall time which is printed too), median of ``--reps`` after one warm-up.
Deviation = ``mean |candidate - transformers fp32| / mean |transformers fp32|``.

Candidates (every one is reported, also where it loses or fails):

* ``torch fp32`` / ``torch bf16-true`` (bf16 weights + activations) / ``torch bf16-true + compile``
  (inductor, weight freezing; compilation in the warm-up call) / ``torch bf16-mixed`` (autocast);
* ``int8 dynamic``: ``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` (qint8
  weights, activations quantised per batch at run time), fp32 elsewhere;
* ``bf16 attention``: fp32 model, ``scaled_dot_product_attention`` run on bf16 q/k/v;
* ``bf16-true, fused SDPA (before)``: bf16 weights with the fused CPU flash kernel for attention,
  the library's path before :mod:`da_toolkit.models.encoders.cpu_attention` (every bf16 CPU
  inference row now gets ``softmax(q k^T / sqrt(d)) v`` as bf16 batched matmuls, in chunks of
  heads whose scores stay under 16 MB: the fused kernel is no faster in bf16 than in fp32 here);
* ``onnxruntime fp32``: our ONNX export (``da_toolkit.inference.export.export_onnx``);
* ``onnxruntime int8 dynamic``: ``onnxruntime.quantization.quantize_dynamic`` of that file
  (QInt8 weights of MatMul/Gemm);
* ``bf16-true + compile max-autotune``: ``torch.compile(mode="max-autotune-no-cudagraphs")``
  (opt-in: only with ``--only``, its GEMM autotuning takes many minutes on a small machine);
* ``onnxruntime int8 static (QDQ)``: ``onnxruntime.quantization.quantize_static`` of our export
  (per-channel int8 weights, uint8 activations calibrated on two inputs drawn like the timed ones);
* thread settings: the best torch path at 1 thread vs the default;
* channels-last for a CNN encoder: a ConvNeXt-T + DPT model (random weights), fp32 and bf16,
  contiguous vs channels-last (compared with itself; transformers has no such model).

``--profile`` adds where the time goes: this machine's matmul peak (fp32, bf16) and, for
transformers fp32, torch fp32 and torch bf16-true, the FLOPs per image, GFLOP/s reached and the
share of CPU time in matmul/convolution/attention kernels.

Run: ``python benchmarks/bench_cpu_paths.py [--size 518 --images 2 --reps 2] [--profile]``; ``--quick`` for a tiny
smoke run (tiny preset with 4 blocks at 56x56; the transformers baseline is then that tiny model).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_timing import load_average, time_cpu  # noqa: E402

#: the tiny preset with 4 blocks tapped once each (a Hugging Face backbone cannot tap a block twice)
TINY_HF: dict[str, Any] = {"preset": "tiny", "encoder": {"depth": 4, "layer_indices": [0, 1, 2, 3]}}


def deviation(out: np.ndarray, ref: np.ndarray) -> float:
    a, b = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(a - b).mean() / np.abs(b).mean())


def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, bs: int) -> Callable[[], np.ndarray]:
    """Run ``fn`` over ``x`` in chunks of ``bs`` under inference mode; output ``(N,H,W)`` float32."""

    def run() -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for i in range(0, len(x), bs):
                outs.append(fn(x[i : i + bs]).float().reshape(-1, *x.shape[-2:]).numpy())
        return np.concatenate(outs)

    return run


@contextlib.contextmanager
def bf16_attention() -> Iterator[None]:
    """Within the block, our DINOv2's ``scaled_dot_product_attention`` runs on bf16 q/k/v."""
    from da_toolkit.models.encoders import dinov2

    def bf16(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16()).to(q.dtype)

    saved = dinov2.attention
    dinov2.attention = bf16  # type: ignore[assignment]
    try:
        yield
    finally:
        dinov2.attention = saved


#: candidates run only when named in ``--only`` (minutes of compilation on a small machine)
OPT_IN = frozenset({"torch bf16-true + compile max-autotune"})

#: matrix-multiply ops of the profile (everything else is "other")
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::convolution",
              "aten::_scaled_dot_product_flash_attention_for_cpu", "aten::scaled_dot_product_attention",
              "aten::mkldnn_convolution", "aten::_convolution", "aten::conv2d", "aten::baddbmm")


def matmul_peak_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 5) -> float:
    """Best-of-``reps`` GFLOP/s of an ``n x n`` matmul in ``dtype`` at the current thread count
    (in CPU seconds: robust to other jobs)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = min(time_cpu(lambda: a @ b, 1)[0] for _ in range(reps))
    return 2 * n**3 / best / 1e9


def profile_path(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> dict[str, float]:
    """FLOPs of one call (``torch.utils.flop_counter``) and the share of the CPU time spent in
    matrix-multiply/convolution/attention kernels (``torch.profiler``, self CPU time, top level)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            fn(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS or "gemm" in e.key.lower()
             or "mkldnn" in e.key or "conv" in e.key)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:6]
    return {"gflop": counter.get_total_flops() / 1e9, "matmul_share": mm / total if total else float("nan"),
            "top_ops": [(e.key, e.self_cpu_time_total / total) for e in top]}


@contextlib.contextmanager
def fused_attention() -> Iterator[None]:
    """Within the block, our DINOv2's attention is the fused ``scaled_dot_product_attention`` in
    every dtype: the library's path before bf16 CPU inference got the matmul form
    (:mod:`da_toolkit.models.encoders.cpu_attention`), kept as a row to compare with."""
    from da_toolkit.models.encoders import dinov2

    saved = dinov2.attention
    dinov2.attention = F.scaled_dot_product_attention  # type: ignore[assignment]
    try:
        yield
    finally:
        dinov2.attention = saved


def build(preset: str | dict[str, Any], workdir: Path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(ours, transformers) with identical random weights (our HF folder saver); ``preset`` is a
    preset name or a model description (e.g. :data:`TINY_HF`)."""
    from transformers import DepthAnythingForDepthEstimation

    from da_toolkit.models.description import build_model
    from da_toolkit.models.weights import save_hf_folder

    torch.manual_seed(0)
    ours = build_model(preset).eval()
    save_hf_folder(ours, workdir / "hf")
    hf = DepthAnythingForDepthEstimation.from_pretrained(str(workdir / "hf"), attn_implementation="eager").eval()
    return ours, hf


def candidates(ours: torch.nn.Module, workdir: Path, size: int) -> dict[str, Callable[[], Callable[[torch.Tensor], torch.Tensor]]]:
    """Name -> factory of a forward ``(B,3,H,W) normalised fp32 -> (B,H,W)`` (built lazily, so a
    candidate that fails is reported, not fatal)."""
    import copy

    def fp32() -> Callable[[torch.Tensor], torch.Tensor]:
        return ours

    def bf16_true() -> Callable[[torch.Tensor], torch.Tensor]:
        m = copy.deepcopy(ours).to(torch.bfloat16)
        return lambda x: m(x.bfloat16())

    def bf16_compiled() -> Callable[[torch.Tensor], torch.Tensor]:
        m = copy.deepcopy(ours).to(torch.bfloat16)
        fn = torch.compile(m, dynamic=False, options={"freezing": True})
        return lambda x: fn(x.bfloat16())

    def bf16_mixed() -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return ours(x)
        return run

    def int8_dynamic() -> Callable[[torch.Tensor], torch.Tensor]:
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(ours), {torch.nn.Linear}, dtype=torch.qint8)

    def attn_bf16() -> Callable[[torch.Tensor], torch.Tensor]:
        def run(x: torch.Tensor) -> torch.Tensor:
            with bf16_attention():
                return ours(x)
        return run

    def onnx_path() -> Path:
        from da_toolkit.inference.export import export_onnx

        path = workdir / "model.onnx"
        if not path.exists():
            export_onnx(copy.deepcopy(ours), path, example_size=(size, size))
        return path

    def ort_session(path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()  # the same thread count as torch's side
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: torch.from_numpy(sess.run(None, {name: x.numpy()})[0])

    def ort_fp32() -> Callable[[torch.Tensor], torch.Tensor]:
        return ort_session(onnx_path())

    def ort_int8() -> Callable[[torch.Tensor], torch.Tensor]:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        q = workdir / "model.int8.onnx"
        if not q.exists():
            quantize_dynamic(str(onnx_path()), str(q), weight_type=QuantType.QInt8)
        return ort_session(q)

    def bf16_fused_attention() -> Callable[[torch.Tensor], torch.Tensor]:
        m = copy.deepcopy(ours).to(torch.bfloat16)

        def run(x: torch.Tensor) -> torch.Tensor:
            with fused_attention():
                return m(x.bfloat16())
        return run

    def bf16_autotuned() -> Callable[[torch.Tensor], torch.Tensor]:
        m = copy.deepcopy(ours).to(torch.bfloat16)
        fn = torch.compile(m, dynamic=False, mode="max-autotune-no-cudagraphs", options={"freezing": True})
        return lambda x: fn(x.bfloat16())

    def ort_int8_static() -> Callable[[torch.Tensor], torch.Tensor]:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class _Calibration(CalibrationDataReader):
            """Two inputs drawn like the timed ones (another seed) for the activation ranges."""

            def __init__(self, name: str) -> None:
                g = torch.Generator().manual_seed(2)
                self.items = iter([{name: torch.rand(1, 3, size, size, generator=g).numpy()} for _ in range(2)])

            def get_next(self) -> dict[str, Any] | None:
                return next(self.items, None)

        import onnxruntime as ort

        src = onnx_path()
        q = workdir / "model.int8s.onnx"
        if not q.exists():
            name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
            quantize_static(str(src), str(q), _Calibration(name), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Gemm", "Conv"])
        return ort_session(q)

    return {"torch fp32": fp32, "torch bf16-true": bf16_true, "torch bf16-true + compile": bf16_compiled,
            "torch bf16-true + compile max-autotune": bf16_autotuned,
            "torch bf16-true, fused SDPA (before)": bf16_fused_attention, "onnxruntime int8 static (QDQ)": ort_int8_static,
            "torch bf16-mixed": bf16_mixed,
            "torch int8 dynamic (linear)": int8_dynamic, "torch fp32 + bf16 attention": attn_bf16,
            "onnxruntime fp32": ort_fp32, "onnxruntime int8 dynamic": ort_int8}


def cnn_channels_last(size: int, images: int, bs: int, reps: int, variant: str) -> list[dict[str, Any]]:
    """ConvNeXt + DPT: contiguous vs channels-last, fp32 and bf16 (CPU s/image, deviation vs fp32)."""
    from da_toolkit.models.description import build_model

    torch.manual_seed(0)
    model = build_model({"preset": "depth-anything-v2-vits",
                         "encoder": {"class_path": "convnext", "init_args": {"variant": variant}}}).eval()
    x = torch.rand(images, 3, size, size)
    rows, ref = [], None
    for name, dtype, cl in (("fp32", torch.float32, False), ("fp32 channels-last", torch.float32, True),
                            ("bf16-true", torch.bfloat16, False), ("bf16-true channels-last", torch.bfloat16, True)):
        m = model.to(dtype=dtype, memory_format=torch.channels_last if cl else torch.contiguous_format)

        def fwd(t: torch.Tensor, m: torch.nn.Module = m, dtype: torch.dtype = dtype, cl: bool = cl) -> torch.Tensor:
            t = t.to(dtype)
            return m(t.contiguous(memory_format=torch.channels_last) if cl else t)

        cpu, wall, out = time_cpu(batched(fwd, x, bs), reps)
        ref = out if ref is None else ref
        rows.append({"name": f"ConvNeXt-{variant} + DPT {name} (batch {bs})", "cpu_s_per_image": cpu / images,
                     "wall_s_per_image": wall / images, "deviation": deviation(out, ref)})
    model.float().to(memory_format=torch.contiguous_format)
    return rows


def run_benchmark(preset: str | dict[str, Any], size: int, images: int, bs: int, reps: int, cnn_variant: str | None,
                  only: list[str] | None = None, profile: bool = False) -> dict[str, Any]:
    res: dict[str, Any] = {"preset": preset if isinstance(preset, str) else "tiny (4 blocks)", "size": size, "images": images, "batch_size": bs, "reps": reps,
                           "threads": torch.get_num_threads(), "cores": os.cpu_count(),
                           "load_before": load_average()}
    torch.manual_seed(1)
    x = torch.rand(images, 3, size, size)  # a normalised network input stand-in (same for all)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
        ours, hf = build(preset, Path(tmp))

        def hf_fwd(t: torch.Tensor) -> torch.Tensor:
            return hf(pixel_values=t).predicted_depth

        base1_cpu, base1_wall, ref = time_cpu(batched(hf_fwd, x, 1), reps)
        baseb_cpu, baseb_wall, _ = time_cpu(batched(hf_fwd, x, bs), reps)
        res["baseline_batch1"] = {"cpu_s_per_image": base1_cpu / images, "wall_s_per_image": base1_wall / images}
        res["baseline_batched"] = {"cpu_s_per_image": baseb_cpu / images, "wall_s_per_image": baseb_wall / images}
        if profile:
            res["profile"] = where_the_time_goes(ours, hf_fwd, x[:bs], Path(tmp), size)
            print(format_profile(res["profile"]), flush=True)
        for name, factory in candidates(ours, Path(tmp), size).items():
            if (only and name not in only) or (not only and name in OPT_IN):
                continue
            row: dict[str, Any] = {"name": f"{name} (batch {bs})"}
            try:
                fn = factory()
                cpu, wall, out = time_cpu(batched(fn, x, bs), reps)
                row.update(cpu_s_per_image=cpu / images, wall_s_per_image=wall / images,
                           deviation=deviation(out, ref))
            except Exception as exc:  # noqa: BLE001 - a candidate that does not work here is reported
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            rows.append(row)
            print(_row_text(row, res), flush=True)
        # thread settings: the fastest torch candidate at 1 thread
        ok = [r for r in rows if "error" not in r and r["name"].startswith("torch") and r["deviation"] <= 0.02]
        if ok and torch.get_num_threads() > 1:
            best = min(ok, key=lambda r: r["cpu_s_per_image"])
            name = best["name"].rsplit(" (batch", 1)[0]
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                cpu, wall, out = time_cpu(batched(candidates(ours, Path(tmp), size)[name](), x, bs), reps)
                base_cpu, _, _ = time_cpu(batched(hf_fwd, x, 1), reps)  # the baseline at 1 thread too
            finally:
                torch.set_num_threads(threads)
            rows.append({"name": f"{name} (batch {bs}, 1 thread instead of {threads})", "cpu_s_per_image": cpu / images,
                         "wall_s_per_image": wall / images, "deviation": deviation(out, ref),
                         "baseline_batch1_1thread_cpu_s_per_image": base_cpu / images})
            print(_row_text(rows[-1], res), flush=True)
    if cnn_variant:
        try:
            cnn = cnn_channels_last(size, images, bs, reps, cnn_variant)
        except Exception as exc:  # noqa: BLE001
            cnn = [{"name": f"ConvNeXt-{cnn_variant} + DPT", "error": f"{type(exc).__name__}: {exc}"[:200]}]
        res["cnn"] = cnn
        for r in cnn:
            print(_row_text(r, None), flush=True)
    for r in rows:
        if "error" not in r:
            r["speedup_vs_batch1"] = res["baseline_batch1"]["cpu_s_per_image"] / r["cpu_s_per_image"]
            r["speedup_vs_batched"] = res["baseline_batched"]["cpu_s_per_image"] / r["cpu_s_per_image"]
    res["candidates"] = rows
    res["load_after"] = load_average()
    return res


def where_the_time_goes(ours: torch.nn.Module, hf_fwd: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                        workdir: Path, size: int) -> dict[str, Any]:
    """This machine's matmul peak (fp32, bf16) at the current thread count, and per path the FLOPs
    per image, the CPU seconds per image, the GFLOP/s reached and the share in matmul kernels."""
    out: dict[str, Any] = {"peak_gflops": {"fp32": matmul_peak_gflops(torch.float32),
                                           "bf16": matmul_peak_gflops(torch.bfloat16)}, "paths": {}}
    made = candidates(ours, workdir, size)
    for name, fn, dtype in (("transformers fp32", hf_fwd, "fp32"), ("torch fp32", made["torch fp32"](), "fp32"),
                            ("torch bf16-true", made["torch bf16-true"](), "bf16"),
                            ("torch bf16-true, fused SDPA (before)", made["torch bf16-true, fused SDPA (before)"](), "bf16")):
        cpu, _, _ = time_cpu(batched(fn, x, len(x)), 2)
        prof = profile_path(fn, x)
        gflop = prof["gflop"] / len(x)
        out["paths"][name] = {**prof, "gflop_per_image": gflop, "cpu_s_per_image": cpu / len(x),
                              "gflops": gflop / (cpu / len(x)), "peak": dtype}
    return out


def format_profile(prof: dict[str, Any]) -> str:
    peak = prof["peak_gflops"]
    lines = [f"matmul peak ({torch.get_num_threads()} threads, 1024x1024, CPU s): fp32 {peak['fp32']:.1f} GFLOP/s, "
             f"bf16 {peak['bf16']:.1f} GFLOP/s",
             "| path | GFLOP/image | CPU s/image | GFLOP/s | % of the matmul peak | time in matmul/conv/attention |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in prof["paths"].items():
        lines.append(f"| {name} | {r['gflop_per_image']:.1f} | {r['cpu_s_per_image']:.3f} | {r['gflops']:.1f} | "
                     f"{100 * r['gflops'] / peak[r['peak']]:.0f} % | {100 * r['matmul_share']:.0f} % |")
        lines.append("  top ops: " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in r["top_ops"]))
    return "\n".join(lines)


def _row_text(r: dict[str, Any], res: dict[str, Any] | None) -> str:
    if "error" in r:
        return f"| {r['name']} | failed: {r['error']} |"
    extra = ""
    if "baseline_batch1_1thread_cpu_s_per_image" in r:
        b1 = r["baseline_batch1_1thread_cpu_s_per_image"]
        return (f"| {r['name']} | {r['cpu_s_per_image']:.3f} | {r['wall_s_per_image']:.3f} | "
                f"{100 * r['deviation']:.3f} % | {b1 / r['cpu_s_per_image']:.2f}x (vs transformers batch 1 "
                f"at 1 thread: {b1:.3f} CPU s) | |")
    if res is not None:
        extra = (f" | {res['baseline_batch1']['cpu_s_per_image'] / r['cpu_s_per_image']:.2f}x"
                 f" | {res['baseline_batched']['cpu_s_per_image'] / r['cpu_s_per_image']:.2f}x")
    return (f"| {r['name']} | {r['cpu_s_per_image']:.3f} | {r['wall_s_per_image']:.3f} | "
            f"{100 * r['deviation']:.3f} %{extra} |")


def format_result(res: dict[str, Any]) -> str:
    lines = [(f"{res['preset']} at {res['size']}x{res['size']}, {res['images']} images, batch {res['batch_size']}, "
             f"{res['reps']} reps, {res['threads']} threads, {res['cores']} cores; "
             f"load {res['load_before']} -> {res['load_after']}"),
             ("| path | CPU s/image | wall s/image | deviation | vs transformers batch 1 (CPU s) | "
             "vs transformers batched (CPU s) |"), "| --- | --- | --- | --- | --- | --- |",
             (f"| transformers fp32 eager (batch 1) | {res['baseline_batch1']['cpu_s_per_image']:.3f} | "
             f"{res['baseline_batch1']['wall_s_per_image']:.3f} | 0 | 1.00x | |"),
             (f"| transformers fp32 eager (batch {res['batch_size']}) | {res['baseline_batched']['cpu_s_per_image']:.3f} | "
             f"{res['baseline_batched']['wall_s_per_image']:.3f} | 0 | | 1.00x |")]
    lines += [_row_text(r, res) for r in res["candidates"]]
    for r in res.get("cnn", []):
        lines.append(_row_text(r, None) + " (vs its own fp32)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="depth-anything-v2-vits")
    p.add_argument("--size", type=int, default=518)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--cnn-variant", default="tiny", help="ConvNeXt variant for the channels-last rows ('' = skip)")
    p.add_argument("--only", nargs="*", default=None, help="subset of candidate names")
    p.add_argument("--quick", action="store_true", help="tiny preset at 56x56, ConvNeXt-atto (smoke run)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--profile", action="store_true",
                   help="also the matmul peak and where the time goes (FLOPs, GFLOP/s, share in matmul kernels)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.preset, args.size, args.cnn_variant = TINY_HF, 56, "atto"
    res = run_benchmark(args.preset, args.size, args.images, args.batch_size, args.reps, args.cnn_variant or None,
                        args.only, profile=args.profile)
    print(format_result(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
