"""``da-toolkit export``: a model preset + local weights -> ONNX with dynamic batch/height/width.

Example::

    da-toolkit export --preset depth-anything-v2-vits --weights depth_anything_v2_vits.pth \\
        --output vits.onnx --check 1x518x518 2x518x686

The export is checked against the torch model with onnxruntime (fp32): for every ``--check``
shape the maximum absolute difference must be <= ``--tolerance`` x the maximum absolute output
(default 1e-4); otherwise the command fails (exit 1) and says by how much.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _shape(text: str) -> tuple[int, int, int]:
    try:
        b, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected BxHxW (e.g. 2x518x686), got {text!r}") from None
    if b < 1 or h % 14 or w % 14 or h < 14 or w < 14:
        raise argparse.ArgumentTypeError(f"{text!r}: batch must be >= 1 and H, W positive multiples of 14")
    return b, h, w


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW (e.g. 518x518), got {text!r}") from None
    if h % 14 or w % 14 or h < 14 or w < 14:
        raise argparse.ArgumentTypeError(f"{text!r}: H and W must be positive multiples of 14")
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="da-toolkit export", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", required=True, help="model preset name (see da_toolkit.models.presets)")
    p.add_argument("--weights", default=None, help="local weights file or folder (omit for random weights)")
    p.add_argument("--output", "-o", required=True, help="the .onnx file to write")
    p.add_argument("--example-size", type=_size, default=(518, 518), help="HxW used for tracing (default 518x518)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--check", type=_shape, nargs="*", default=None,
                   help="BxHxW shapes checked with onnxruntime (default 1x518x518 2x518x686); give none to skip")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |diff| / max |output| allowed (default 1e-4)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="preset override, value parsed as YAML (e.g. max_depth=20)")
    return p


def _overrides(items: Sequence[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--override {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from da_toolkit import load_model
    from da_toolkit.inference.export import check_onnx, export_onnx

    try:
        model = load_model(args.preset, args.weights, **_overrides(args.override))
    except (KeyError, ValueError, FileNotFoundError, TypeError) as exc:
        print(f"da-toolkit export: error: {exc}", file=sys.stderr)
        return 2
    path = export_onnx(model, args.output, example_size=args.example_size, opset=args.opset,
                       metadata={"preset": args.preset})
    print(f"wrote {path} (output_kind={model.output_kind}; dynamic batch, height, width in multiples of 14)")
    shapes = [(1, 518, 518), (2, 518, 686)] if args.check is None else args.check
    worst = 0.0
    for r in check_onnx(model, path, shapes):
        print(f"check {'x'.join(map(str, r.shape))}: max|diff| {r.max_abs_diff:.3g}, max|output| "
              f"{r.max_abs_output:.3g}, relative {r.relative:.3g}")
        worst = max(worst, r.relative)
    if worst > args.tolerance:
        print(f"da-toolkit export: parity check FAILED: relative difference {worst:.3g} > {args.tolerance:g}",
              file=sys.stderr)
        return 1
    return 0
