"""Check a Hugging Face ``config.json`` against the tensor shapes of its weights, before building.

A folder's ``config.json`` decides the architecture that is allocated; a wrong or hostile one
(``hidden_size: 65536, num_hidden_layers: 4096``) must not be built. The shapes come from the
safetensors headers (nothing is loaded) or from the tensors of a ``pytorch_model.bin``:

1. quick checks of the numbers that decide the size of the model - backbone width and patch
   size (patch-embedding weight), number of transformer layers (``backbone.encoder.layer.N``);
2. the model the config describes is built on the ``meta`` device (no memory) and every
   parameter shape is compared with the file's, through the same key map as the real load.

Every failure is a :class:`~da_toolkit.models.weights.errors.WeightsError` naming ``config.json``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.encoders.dinov2 import DINOv2Encoder
from da_toolkit.models.keymaps import hf_to_ours
from da_toolkit.models.weights.errors import WeightsError, WeightsMismatchError

__all__ = ["check_hf_config_shapes", "safetensors_shapes"]

_PATCH_KEY = "backbone.embeddings.patch_embeddings.projection.weight"
_LAYER_RE = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.")


def safetensors_shapes(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, dtype)`` from a safetensors header; no tensor data is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            out = {}
            for key in f.keys():  # noqa: SIM118 - safe_open is not iterable
                piece = f.get_slice(key)
                out[key] = (tuple(int(n) for n in piece.get_shape()), str(piece.get_dtype()))
            return out
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors header (truncated or corrupt?): {exc}") from exc


_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}


def _backbone(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    bb = cfg.get("backbone_config")
    return bb if isinstance(bb, Mapping) else {}


def _quick(cfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], cfg_path: Path, source: Path) -> None:
    bb = _backbone(cfg)
    patch = shapes.get(_PATCH_KEY)
    if patch is None:
        raise WeightsError(
            f"{cfg_path}: describes a Depth Anything model but {source} has no {_PATCH_KEY} "
            f"(not the weights of this config)"
        )
    hidden = int(bb.get("hidden_size", 768))
    if len(patch) != 4 or patch[0] != hidden:
        raise WeightsError(
            f"{cfg_path}: backbone_config.hidden_size is {hidden}, but {source} holds a backbone of width "
            f"{patch[0] if patch else '?'} ({_PATCH_KEY} {tuple(patch)}); refusing to build the model it describes"
        )
    p = int(bb.get("patch_size", cfg.get("patch_size", 14)))
    if tuple(patch[2:]) != (p, p):
        raise WeightsError(f"{cfg_path}: patch_size is {p}, but {source} has {p}x{p} != {tuple(patch[2:])} patches")
    layers = {int(m.group(1)) for k in shapes if (m := _LAYER_RE.match(k))}
    depth = int(bb.get("num_hidden_layers", 12))
    if len(layers) != depth or (layers and max(layers) != depth - 1):
        raise WeightsError(
            f"{cfg_path}: backbone_config.num_hidden_layers is {depth}, but {source} holds {len(layers)} "
            f"transformer layers; refusing to build the model it describes"
        )


def check_hf_config_shapes(
    cfg: Mapping[str, Any],
    description: Mapping[str, Any],
    shapes: Mapping[str, tuple[tuple[int, ...], str]],
    cfg_path: Path,
    source: Path,
) -> None:
    """Refuse a ``config.json`` whose model does not match the tensor shapes of its weights file.

    Args:
        cfg: the parsed ``config.json``.
        description: our model description translated from it.
        shapes: ``HF key -> (shape, dtype)`` of the weights (:func:`safetensors_shapes`).
        cfg_path: the ``config.json`` (named in every error).
        source: the weights file (or shard index) the shapes come from.

    Raises:
        WeightsError: a quick size check failed or the model cannot be built from the config;
            :class:`WeightsMismatchError` when parameter shapes/keys differ.
    """
    _quick(cfg, {k: s for k, (s, _) in shapes.items()}, cfg_path, source)
    init = description["init_args"]
    try:  # the two parts an HF description names (hf_config), without DepthModel: no import cycle
        with torch.device("meta"):
            encoder = DINOv2Encoder(**init["encoder"]["init_args"])
            decoder = DPTDecoder(**init["decoder"]["init_args"])
            decoder.attach(encoder)
    except Exception as exc:  # noqa: BLE001 - any constructor failure names the config
        raise WeightsError(f"{cfg_path}: the model it describes cannot be built: {type(exc).__name__}: {exc}") from None
    meta = {k: torch.empty(s, dtype=_ST_DTYPES.get(d, torch.float32), device="meta") for k, (s, d) in shapes.items()}
    try:
        ours = hf_to_ours(meta)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"{cfg_path}: {source} does not hold the weights this config describes: {exc}") from None
    own = {f"{part}.{k}": v for part, module in (("encoder", encoder), ("decoder", decoder))
           for k, v in module.state_dict().items()}
    missing = sorted(set(own) - set(ours))
    unexpected = sorted(set(ours) - set(own))
    mismatched = [(k, tuple(ours[k].shape), tuple(own[k].shape)) for k in sorted(set(own) & set(ours))
                  if tuple(ours[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(f"{source} (for the model {cfg_path} describes)", missing, unexpected, mismatched)
