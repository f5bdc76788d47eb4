"""``da-toolkit convert INPUT OUTPUT.safetensors [--preset NAME | --model MODEL]``.

Reads any supported weights (official ``.pth``, Hugging Face folder, our safetensors, Lightning
``.ckpt``, DINOv2 backbone-only checkpoints with official, timm or Hugging Face keys) and writes
them as safetensors in our format, with metadata recording the preset and the model config so
that the file rebuilds its model by itself. The model is built and the weights loaded strictly
before writing, so a file that does not fit its architecture is rejected with the list of
missing / unexpected / mis-shaped keys. A backbone-only input is written as an encoder-only file
(``content: encoder``), to initialise encoders (``load_encoder_weights``, ``PresetModel(
encoder_weights=...)``). The output is written atomically; an existing output is only replaced
by a complete new file.

The architecture of an input that does not record it is ``--preset NAME`` or, for any encoder
and decoder, ``--model MODEL``: a model description in the recipe schema (YAML text or a YAML
file: ``{class_path: DepthModel, init_args: {encoder: ..., decoder: ...}}``, a preset name, or
``{preset: NAME, encoder: {...}, decoder: {...}}``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``da-toolkit convert``."""
    from da_toolkit.models.presets import PRESETS

    parser = argparse.ArgumentParser(
        prog="da-toolkit convert",
        description=(
            "Convert Depth Anything weights (official .pth, Hugging Face folder, da-toolkit "
            "safetensors or Lightning .ckpt) to da-toolkit safetensors; DINOv2 backbone-only "
            "checkpoints (official, timm or Hugging Face keys; needs --preset) become an "
            "encoder-only file. Never downloads."
        ),
    )
    parser.add_argument("input", help="weights file or Hugging Face folder (config.json + model.safetensors)")
    parser.add_argument("output", help="output .safetensors file")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        metavar="NAME",
        help="architecture of the input; required for official .pth files and DINOv2 backbones, "
        "which do not record it "
        "(Hugging Face folders, da-toolkit files and task checkpoints with a preset do) "
        f"(one of: {', '.join(sorted(PRESETS))})",
    )
    parser.add_argument(
        "--model",
        metavar="MODEL",
        default=None,
        help="architecture of the input as a model description (instead of --preset): YAML text or a YAML "
        "file, e.g. '{class_path: DepthModel, init_args: {encoder: {class_path: convnext, init_args: "
        "{variant: tiny}}, decoder: {class_path: dpt}}}', or '{preset: NAME, decoder: {max_depth: 20.0}}'",
    )
    return parser


def _model_argument(text: str) -> dict:
    """The canonical description for ``--model`` (YAML text, or a YAML file holding it)."""
    from pathlib import Path

    import yaml

    from da_toolkit.cli.model_forms import expand_model_value

    source = Path(text)
    try:
        value = yaml.safe_load(source.read_text() if source.suffix in (".yaml", ".yml") and source.is_file() else text)
    except yaml.YAMLError as exc:
        raise ValueError(f"--model: invalid YAML: {exc}") from None
    if isinstance(value, dict) and isinstance(value.get("model"), (dict, str)) and "class_path" not in value:
        value = value["model"]  # a file with a top-level `model:` key
    return expand_model_value(value, "--model")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 on success, 1 on bad input)."""
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    from da_toolkit.models.loading import encoder_from_loaded, model_from_loaded
    from da_toolkit.models.weights import WeightsError, read_weights, save_encoder_weights, save_weights

    if not args.output.endswith(".safetensors"):
        print(f"da-toolkit convert: output {args.output!r} must end with .safetensors", file=sys.stderr)
        return 1
    if args.preset is not None and args.model is not None:
        print("da-toolkit convert: give --preset or --model, not both", file=sys.stderr)
        return 1
    try:
        loaded = read_weights(args.input)
        if args.model is not None:  # the architecture given here replaces what the file records
            loaded.description = _model_argument(args.model)
        if loaded.backbone_only:
            model, loaded = encoder_from_loaded(loaded, preset=args.preset)
        else:
            model, loaded = model_from_loaded(loaded, preset=args.preset)
    except (WeightsError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"da-toolkit convert: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 1
    if loaded.backbone_only:
        save_encoder_weights(model, args.output, preset=loaded.preset, config=loaded.config)
        n = sum(p.numel() for p in model.encoder.parameters())
        print(
            f"wrote {args.output}: {loaded.format} backbone weights from {args.input}, "
            f"{n / 1e6:.1f}M parameters, encoder only (preset {loaded.preset or '-'})"
        )
        return 0
    save_weights(model, args.output, preset=loaded.preset, config=loaded.config)
    n = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.output}: {loaded.format} weights from {args.input}, "
        f"{n / 1e6:.1f}M parameters, preset {loaded.preset or '-'}, output {model.output_kind}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
