"""Named model presets (data) and :func:`load_model`.

Each preset is a :class:`ModelConfig` (DINOv2 size and taps, DPT widths, head) plus the licence
of the released weights it corresponds to. ``load_model`` never downloads: weights come from a
local path (any format :mod:`da_toolkit.models.weights` reads).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from da_toolkit.models.config import ModelConfig, build_model
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders.dinov2 import DINOV2_SIZES, V2_LAYER_INDICES

__all__ = ["Preset", "PRESETS", "PresetModel", "get_preset", "load_model", "DPT_WIDTHS"]

#: DPT ``features`` / ``out_channels`` per encoder size (SPEC 1).
DPT_WIDTHS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
    "vitg": (384, (1536, 1536, 1536, 1536)),
}

APACHE = "Apache-2.0"
CC_BY_NC = "CC-BY-NC-4.0"


@dataclass(frozen=True)
class Preset:
    """A named model: its configuration, the licence of its released weights, a description."""

    name: str
    config: ModelConfig
    licence: str
    description: str

    @property
    def output_kind(self) -> str:
        return "disparity" if self.config.decoder_args.get("max_depth") is None else "metric"


def _dinov2_dpt(size: str, taps: tuple[int, ...], max_depth: float | None) -> ModelConfig:
    features, out_channels = DPT_WIDTHS[size]
    return ModelConfig(
        encoder="dinov2",
        decoder="dpt",
        encoder_args={**DINOV2_SIZES[size], "layer_indices": list(taps)},
        decoder_args={"features": features, "out_channels": list(out_channels), "max_depth": max_depth},
    )


def _last_four(size: str) -> tuple[int, ...]:
    depth = int(DINOV2_SIZES[size]["depth"])
    return tuple(range(depth - 4, depth))


# (name, size, taps, max_depth, licence, description) - the released models.
_TABLE: list[tuple[str, str, tuple[int, ...], float | None, str, str]] = [
    *[(f"depth-anything-v1-{s}", s, _last_four(s), None, APACHE, f"Depth Anything V1 {s}, relative disparity")
      for s in ("vits", "vitb", "vitl")],
    *[(f"depth-anything-v2-{s}", s, V2_LAYER_INDICES[s], None, APACHE if s == "vits" else CC_BY_NC,
       f"Depth Anything V2 {s}, relative disparity") for s in ("vits", "vitb", "vitl", "vitg")],
    *[(f"depth-anything-v2-metric-{d}-{s}", s, V2_LAYER_INDICES[s], m, APACHE if s == "vits" else CC_BY_NC,
       f"Depth Anything V2 {s} fine-tuned on {d}, metric depth in metres (max {m:g} m)")
      for d, m in (("hypersim", 20.0), ("vkitti", 80.0)) for s in ("vits", "vitb", "vitl")],
]

PRESETS: dict[str, Preset] = {
    name: Preset(name, _dinov2_dpt(size, taps, max_depth), licence, desc)
    for name, size, taps, max_depth, licence, desc in _TABLE
}
PRESETS["depth-anything-v2-vitg"] = Preset(
    "depth-anything-v2-vitg",
    PRESETS["depth-anything-v2-vitg"].config,
    CC_BY_NC,
    "Depth Anything V2 vitg, relative disparity (weights announced, not publicly released)",
)
#: A tiny random model for tests and smoke runs (2 blocks, width 32, patch 14): no weights exist.
PRESETS["tiny"] = Preset(
    "tiny",
    ModelConfig(
        encoder="dinov2",
        decoder="dpt",
        encoder_args={"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56, "layer_indices": [0, 0, 1, 1]},
        decoder_args={"features": 16, "out_channels": [8, 16, 32, 32], "max_depth": None},
    ),
    "n/a (random weights)",
    "tiny DINOv2 (2 blocks, width 32) + DPT (features 16) for tests",
)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``KeyError`` listing the known names otherwise)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def load_model(preset: str, weights: str | os.PathLike[str] | None = None, **overrides: Any) -> DepthModel:
    """Build the model of a preset, optionally loading local weights; never downloads.

    Args:
        preset: a name of :data:`PRESETS` (e.g. ``"depth-anything-v2-vits"``).
        weights: a local file or folder in any supported format (official ``.pth``, Hugging Face
            folder, our safetensors, Lightning ``.ckpt``); ``None`` = random initialisation.
        **overrides: constructor arguments of the encoder (``DINOv2Encoder``: ``depth``,
            ``layer_indices``, ...) or decoder (``DPTDecoder``: ``max_depth``, ``use_bn``, ...).

    Returns:
        A :class:`DepthModel` in eval mode on the CPU. ``model(x)`` takes ``(B,3,H,W)``
        ImageNet-normalised input (sides multiples of 14) and returns ``(B,H,W)`` relative
        disparity or metres (``model.output_kind``).
    """
    config = get_preset(preset).config.with_overrides(**overrides)
    model = build_model(config)
    if weights is not None:
        from da_toolkit.models.weights import load_weights

        load_weights(model, weights)
    return model.eval()


class PresetModel(DepthModel):
    """A preset as a :class:`DepthModel` subclass, for recipes (``class_path: PresetModel``).

    Args:
        preset: a name of :data:`PRESETS`.
        weights: optional local full checkpoint (any supported format).
        encoder_weights: optional local DINOv2 backbone checkpoint to initialise the encoder
            only (e.g. ``dinov2_vits14_pretrain.pth``; students and metric fine-tuning).
        overrides: encoder/decoder constructor arguments, as for :func:`load_model`.

    Unlike :func:`load_model` the module is left in training mode (Lightning sets modes).
    """

    def __init__(
        self,
        preset: str,
        weights: str | None = None,
        encoder_weights: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        built = build_model(get_preset(preset).config.with_overrides(**dict(overrides or {})))
        super().__init__(built.encoder, built.decoder)
        self.preset = preset
        from da_toolkit.models.weights import load_encoder_weights, load_weights

        if weights is not None:
            load_weights(self, weights)
        if encoder_weights is not None:
            load_encoder_weights(self.encoder, encoder_weights)
