"""``da-toolkit export``: a model (self-describing weights file, preset, or description) -> ONNX.

Examples::

    da-toolkit export --weights runs/teacher/final.ckpt --output teacher.onnx
    da-toolkit export --model depth-anything-v2-vits --weights depth_anything_v2_vits.pth --output vits.onnx
    da-toolkit export --model student.yaml --weights student.safetensors --output student.onnx

The graph has dynamic batch, height and width (height and width step by the model's input
multiple: 14 for DINOv2, the largest stride of a CNN). It is checked against the torch model with
onnxruntime (fp32): for every ``--check`` shape the maximum absolute difference must be <=
``--tolerance`` x the maximum absolute output.

Exit status: 0 written and checked; 1 parity check failed; 2 bad arguments, a model that cannot be
built or loaded, or a model with no weights loaded (unless ``--allow_random_weights``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["build_parser", "load_export_model", "main"]


def _dims(text: str, n: int, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        values = ()
    if len(values) != n or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected {example} with positive integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser (``--help`` shows the module docstring's exit-status rules)."""
    p = argparse.ArgumentParser(prog="da-toolkit export", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n")[-1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "--preset", dest="model", default=None,
                   help="a preset name, a model description (YAML/JSON file or inline mapping, e.g. "
                        "'{preset: tiny}'), or a weights file that records its model; omit with --weights FILE "
                        "that records its model")
    p.add_argument("--weights", default=None,
                   help="local weights file or folder: loaded into --model, or (alone) rebuilding the model it records")
    p.add_argument("--output", "-o", required=True, help="the .onnx file to write")
    p.add_argument("--example-size", type=lambda t: _dims(t, 2, "HxW"), default=None,
                   help="HxW used for tracing, multiples of the model's input multiple (default 4x6 multiples)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--check", type=lambda t: _dims(t, 3, "BxHxW"), nargs="*", default=None,
                   help="BxHxW shapes checked with onnxruntime (default two shapes unlike the tracing one); "
                        "give none to skip")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |diff| / max |output| allowed (default 1e-4)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor argument of the encoder/decoder/model, value parsed as YAML (e.g. max_depth=20)")
    p.add_argument("--allow_random_weights", action="store_true",
                   help="export a model whose weights were never loaded (refused by default)")
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


def _description(value: str) -> Mapping[str, Any] | None:
    """A description from a YAML/JSON file or an inline mapping, else ``None``."""
    import yaml

    path = Path(value)
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        data = yaml.safe_load(path.read_text())
        if isinstance(data, Mapping) and "model" in data and "init_args" not in data and "preset" not in data:
            data = data["model"]  # a recipe-like file with a top-level model key
        return data if isinstance(data, Mapping) else None
    if value.lstrip().startswith("{"):
        data = yaml.safe_load(value)
        if not isinstance(data, Mapping):
            raise ValueError(f"--model {value!r}: expected a mapping")
        return data
    return None


def load_export_model(model: str | None, weights: str | None, overrides: Mapping[str, Any]) -> nn.Module:
    """Build the model ``export`` (or any command taking ``--model/--weights``) works on."""
    from da_toolkit.models import load_model
    from da_toolkit.models.description import build_model, expand_model, with_overrides
    from da_toolkit.models.preset_table import PRESETS

    if model is None:
        if weights is None:
            raise ValueError("give --weights FILE (a file that records its model) and/or --model")
        return load_model(weights, **overrides)
    if model in PRESETS:
        return load_model(model, weights, **overrides)
    desc = _description(model)
    if desc is None:
        if not Path(model).exists():
            raise FileNotFoundError(f"--model {model!r}: neither a preset ({', '.join(PRESETS)}), a description "
                                    f"file or mapping, nor an existing weights file")
        if weights is not None:
            raise ValueError("--model FILE is a weights file that records its model: do not give --weights too")
        return load_model(model, **overrides)
    desc = expand_model(desc, where="--model")
    if weights is not None:
        desc["init_args"]["weights"] = weights
    return build_model(with_overrides(desc, overrides, where="--model"), where="--model").eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``da-toolkit export``; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from da_toolkit.inference.export import (
        check_onnx,
        default_check_shapes,
        export_onnx,
    )
    from da_toolkit.inference.guards import require_trained_model
    from da_toolkit.models.inference_core import input_multiple

    try:
        model = load_export_model(args.model, args.weights, _overrides(args.override))
        require_trained_model(model, args.allow_random_weights, where="da-toolkit export")
        m = input_multiple(model)
        shapes = default_check_shapes(m) if args.check is None else [tuple(s) for s in args.check]
        for size in [*([args.example_size] if args.example_size else []), *(s[1:] for s in shapes)]:
            if size[0] % m or size[1] % m:
                raise ValueError(f"size {'x'.join(map(str, size))}: height and width must be multiples of the "
                                 f"model's input multiple {m}")
    except (KeyError, ValueError, FileNotFoundError, TypeError) as exc:
        print(f"da-toolkit export: error: {exc}", file=sys.stderr)
        return 2
    metadata = {"source": str(args.weights or args.model)}
    path = export_onnx(model, args.output, example_size=args.example_size, opset=args.opset, metadata=metadata)
    print(f"wrote {path} (output_kind={model.output_kind}; dynamic batch, height, width in multiples of {m})")
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
