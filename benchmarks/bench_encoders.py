"""Encoder x decoder families at 518x518 on CPU: parameters, GFLOP, images/s, ONNX exportability.

For each shipped family (DINOv2 + DPT, ConvNeXt / timm + DPT or an smp decoder, smp encoders +
DPT or smp decoders) with random weights (seeded; nothing is downloaded):

- parameters of the ``DepthModel``;
- GFLOP per image of one forward at the network input that :class:`~da_toolkit.inference.Predictor`
  uses for a 518x518 image with ``input_size=518`` (518x518 for patch-14 ViTs, 544x544 for
  stride-32 CNNs), counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add = 2
  FLOP; convolutions and matmuls only);
- CPU images/s through ``Predictor`` (batch 1, fp32 and bf16-mixed): ``--images`` synthetic
  uint8 518x518 images after one warm-up image, preprocessing and upsampling included;
- ONNX: ``da_toolkit.inference.export.export_onnx`` (dynamo, dynamic batch/height/width) and
  onnxruntime parity (``check_onnx``) at two sizes; the failure reason otherwise.

Run: ``python benchmarks/bench_encoders.py [--images 3] [--only NAME ...] [--no-onnx]``; prints
``uptime`` before and after (other load on the machine slows every row) and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from da_toolkit.models import DepthModel, preset_description
from da_toolkit.models.description import build_model

SIZE = 518


def _smp_enc(name: str, **kw: Any) -> Any:
    from da_toolkit.models.encoders.smp_encoder import SmpEncoder

    return SmpEncoder(name, **kw)


def _smp_dec(arch: str, **kw: Any) -> Any:
    from da_toolkit.models.decoders.smp_decoder import SmpDecoder

    return SmpDecoder(arch, **kw)


def _dpt_s() -> Any:
    from da_toolkit.models.decoders.dpt import DPTDecoder

    return DPTDecoder(64, (48, 96, 192, 384))


def _convnext(variant: str = "tiny") -> Any:
    from da_toolkit.models.encoders import ConvNeXtEncoder

    return ConvNeXtEncoder(variant)


def _timm(name: str) -> Any:
    from da_toolkit.models.encoders import TimmEncoder

    return TimmEncoder(name)


#: name -> (encoder, decoder) factories; the DPT rows use the V2-Small decoder widths
FAMILIES: dict[str, Callable[[], DepthModel]] = {
    "dinov2 vits + dpt (V2-Small)": lambda: build_model(preset_description("depth-anything-v2-vits")),
    "convnext tiny + dpt": lambda: DepthModel(_convnext("tiny"), _dpt_s()),
    "convnext tiny + smp unet": lambda: DepthModel(_convnext("tiny"), _smp_dec("unet")),
    "timm resnet50 + dpt": lambda: DepthModel(_timm("resnet50"), _dpt_s()),
    "smp resnet34 + dpt": lambda: DepthModel(_smp_enc("resnet34"), _dpt_s()),
    "smp resnet34 + smp unet": lambda: DepthModel(_smp_enc("resnet34"), _smp_dec("unet")),
    "smp resnet34 + smp fpn": lambda: DepthModel(_smp_enc("resnet34"), _smp_dec("fpn")),
    "smp resnet34 (os16) + smp deeplabv3plus": lambda: DepthModel(
        _smp_enc("resnet34", output_stride=16), _smp_dec("deeplabv3plus")
    ),
    "smp efficientnet-b0 + smp unet": lambda: DepthModel(_smp_enc("efficientnet-b0"), _smp_dec("unet")),
    "smp mit_b0 + smp segformer": lambda: DepthModel(_smp_enc("mit_b0"), _smp_dec("segformer")),
    "smp tu-convnext_tiny + smp upernet": lambda: DepthModel(_smp_enc("tu-convnext_tiny"), _smp_dec("upernet")),
}


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "uptime unavailable"


def _network_side(model: DepthModel) -> tuple[int, int]:
    from da_toolkit.models.inference_core import input_multiple, network_size

    return network_size(SIZE, SIZE, input_multiple(model), input_size=SIZE)


def _gflop(model: DepthModel, hw: tuple[int, int]) -> float:
    x = torch.randn(1, 3, *hw)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def _images_per_s(model: DepthModel, precision: str, images: list[np.ndarray]) -> float:
    from da_toolkit.inference import Predictor

    pred = Predictor(model, precision=precision, batch_size=1, input_size=SIZE, device="cpu", progress=False)
    pred.predict_items(images[:1])  # warm-up
    t0 = time.perf_counter()
    items = pred.predict_items(images)
    dt = time.perf_counter() - t0
    bad = [it.error for it in items if it.error is not None]
    if bad:
        raise RuntimeError(f"prediction failed: {bad[0]}")
    return len(images) / dt


def _onnx(model: DepthModel) -> str:
    from da_toolkit.inference.export import check_onnx, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                export_onnx(model, path)
            results = check_onnx(model, path)
        except Exception as exc:  # noqa: BLE001 - report any exporter failure as the reason
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"no: {type(exc).__name__}: {first[:160]}"
    worst = max(r.max_abs_diff / max(r.max_abs_output, 1e-12) for r in results)
    return f"yes (max rel. diff {worst:.1e})" if worst < 1e-3 else f"no: onnxruntime differs (max rel. diff {worst:.1e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3, help="timed images per precision")
    ap.add_argument("--only", nargs="*", default=None, help="family names (substring match)")
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(args.images)]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; before: {_uptime()}", flush=True)
    rows = []
    for name, factory in FAMILIES.items():
        if args.only and not any(s in name for s in args.only):
            continue
        model = factory().eval()
        hw = _network_side(model)
        row: dict[str, Any] = {
            "family": name,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            "network_input": f"{hw[0]}x{hw[1]}",
            "gflop": _gflop(model, hw),
        }
        for precision in ("32", "bf16-mixed"):
            try:
                row[f"img_s_{precision}"] = _images_per_s(model, precision, images)
            except Exception as exc:  # noqa: BLE001
                row[f"img_s_{precision}"] = f"failed: {type(exc).__name__}: {exc}"[:120]
        row["onnx"] = "not tried" if args.no_onnx else _onnx(model)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"after: {_uptime()}")
    print("\n| encoder + decoder | params (M) | network input | GFLOP / image | img/s fp32 | img/s bf16-mixed | ONNX |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    for r in rows:
        def fmt(v: Any) -> str:
            return f"{v:.2f}" if isinstance(v, float) else str(v)

        print(f"| {r['family']} | {r['params_M']:.1f} | {r['network_input']} | {r['gflop']:.1f} | "
              f"{fmt(r['img_s_32'])} | {fmt(r['img_s_bf16-mixed'])} | {r['onnx']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
