"""The named model presets as data, in the model-description schema (no building here).

Each :class:`Preset` holds the description of its architecture (``class_path`` + ``init_args``
of :class:`~da_toolkit.models.depth_model.DepthModel`, encoder and decoder named by their
registered names ``dinov2`` / ``dpt``), the licence of the released weights it corresponds to
and a one-line text. :mod:`da_toolkit.models.description` expands and builds them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from da_toolkit.models.describe import DEPTH_MODEL_CLASS_PATH
from da_toolkit.models.encoders.dinov2 import DINOV2_SIZES, V2_LAYER_INDICES
from da_toolkit.models.licence import NOASSERTION as _NOASSERTION

__all__ = ["APACHE", "CC_BY_NC", "DPT_WIDTHS", "NOASSERTION", "PRESETS", "Preset", "get_preset"]

#: DPT ``features`` / ``out_channels`` per encoder size (SPEC 1).
DPT_WIDTHS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "vits": (64, (48, 96, 192, 384)),
    "vitb": (128, (96, 192, 384, 768)),
    "vitl": (256, (256, 512, 1024, 1024)),
    "vitg": (384, (1536, 1536, 1536, 1536)),
}

APACHE = "Apache-2.0"
CC_BY_NC = "CC-BY-NC-4.0"
#: SPDX "no licence stated" (re-exported from :mod:`da_toolkit.models.licence`)
NOASSERTION = _NOASSERTION


@dataclass(frozen=True)
class Preset:
    """A named model: its description (data), the licence of its released weights, a text.

    The description carries ``licence`` and ``origin`` (the preset name) as arguments of the
    model, so every model built from it, and every file and output made from that model, carries
    them too (:mod:`da_toolkit.models.licence`); ``tiny`` has no weights and carries neither."""

    name: str
    model: dict[str, Any]
    licence: str
    text: str

    @property
    def max_depth(self) -> float | None:
        """``max_depth`` of the head in metres, ``None`` for relative presets."""
        return self.model["init_args"]["decoder"]["init_args"].get("max_depth")

    @property
    def output_kind(self) -> str:
        """``"disparity"`` (relative) or ``"metric"`` (metres)."""
        return "disparity" if self.max_depth is None else "metric"

    def description(self) -> dict[str, Any]:
        """A fresh copy of the model description (safe to modify)."""
        return copy.deepcopy(self.model)


def _description(encoder_args: dict[str, Any], decoder_args: dict[str, Any], align_corners: bool,
                 licence: str | None = None, origin: str | None = None) -> dict[str, Any]:
    init: dict[str, Any] = {
        "encoder": {"class_path": "dinov2", "init_args": encoder_args},
        "decoder": {"class_path": "dpt", "init_args": decoder_args},
        "weights": None,
        "encoder_weights": None,
        "upsample_align_corners": align_corners,
    }
    if licence is not None:  # the model carries the licence of the weights into every output
        init.update(licence=licence, origin=origin)
    return {"class_path": DEPTH_MODEL_CLASS_PATH, "init_args": init}


def _dinov2_dpt(size: str, taps: tuple[int, ...], max_depth: float | None, align_corners: bool,
                licence: str, origin: str) -> dict[str, Any]:
    features, out_channels = DPT_WIDTHS[size]
    return _description(
        {**DINOV2_SIZES[size], "layer_indices": list(taps)},
        {"features": features, "out_channels": list(out_channels), "max_depth": max_depth},
        align_corners,
        licence,
        origin,
    )


def _last_four(size: str) -> tuple[int, ...]:
    depth = int(DINOV2_SIZES[size]["depth"])
    return tuple(range(depth - 4, depth))


# Licences of the released weights, as upstream states them (checked 2026-12):
# - V1: "Model weights license: Are the model weights under Apache 2.0?" - "Yes." (the author,
#   LiheYoung/Depth-Anything issue #15).
# - V2 relative: the README of DepthAnything/Depth-Anything-V2 ("LICENSE" section): the Small model
#   is under Apache-2.0, the Base/Large/Giant models under CC-BY-NC-4.0; the author confirmed that
#   only the weights of Base/Large/Giant are non-commercial (issue #81) and that only the ViT-S
#   model may be used commercially (issue #27).
# - V2 metric (metric_depth/README.md): states no licence at all; the question "are the metric
#   models Apache-2.0?" is open upstream (issue #245, unanswered; its thread notes that the Hugging
#   Face cards of the metric Small checkpoints carry no licence tag). So the metric Small presets
#   record NOASSERTION (not Apache-2.0, which this table claimed before): loading them prints a
#   notice. Metric Base/Large are fine-tunes of the CC-BY-NC-4.0 Base/Large weights and keep that.
_METRIC_SMALL = NOASSERTION

# (name, size, taps, max_depth, align_corners, licence, text) - the released models. The official
# V1 run.py upsamples predictions with align_corners=False, V2's infer_image with True.
_TABLE: list[tuple[str, str, tuple[int, ...], float | None, bool, str, str]] = [
    *[(f"depth-anything-v1-{s}", s, _last_four(s), None, False, APACHE, f"Depth Anything V1 {s}, relative disparity")
      for s in ("vits", "vitb", "vitl")],
    *[(f"depth-anything-v2-{s}", s, V2_LAYER_INDICES[s], None, True, APACHE if s == "vits" else CC_BY_NC,
       f"Depth Anything V2 {s}, relative disparity" + (" (weights announced, not publicly released)"
                                                      if s == "vitg" else "")) for s in ("vits", "vitb", "vitl", "vitg")],
    *[(f"depth-anything-v2-metric-{d}-{s}", s, V2_LAYER_INDICES[s], m, True,
       _METRIC_SMALL if s == "vits" else CC_BY_NC,
       f"Depth Anything V2 {s} fine-tuned on {d}, metric depth in metres (max {m:g} m)")
      for d, m in (("hypersim", 20.0), ("vkitti", 80.0)) for s in ("vits", "vitb", "vitl")],
]

PRESETS: dict[str, Preset] = {
    name: Preset(name, _dinov2_dpt(size, taps, max_depth, align, licence, name), licence, text)
    for name, size, taps, max_depth, align, licence, text in _TABLE
}
#: A tiny random model for tests and smoke runs (2 blocks, width 32, patch 14): no weights exist.
PRESETS["tiny"] = Preset(
    "tiny",
    _description(
        {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56, "layer_indices": [0, 0, 1, 1]},
        {"features": 16, "out_channels": [8, 16, 32, 32], "max_depth": None},
        True,
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
