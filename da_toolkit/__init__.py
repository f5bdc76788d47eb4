"""da-toolkit: train, fine-tune, pseudo-label, evaluate, export and run Depth Anything models."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from da_toolkit.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "load_model", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from da_toolkit.models.depth_model import DepthModel


def load_model(
    preset_or_path: str | os.PathLike[str], weights: str | os.PathLike[str] | None = None, **overrides: Any
) -> DepthModel:
    """Build a preset (optionally loading local weights) or rebuild a self-describing weights
    file (``load_model("final.safetensors")``, like ``from_pretrained``); never downloads.

    ``model(x)``: ``x`` ``(B,3,H,W)`` ImageNet-normalised float, H and W multiples of
    ``model.input_multiple`` -> ``(B,H,W)``, what the official network's forward returns
    (relative disparity, or metres for metric models). ``model.infer_image(rgb, input_size=518)``:
    ``rgb`` ``(H,W,3)`` uint8 RGB -> ``(H,W)`` float32 at the original size, official preprocessing.

    See :func:`da_toolkit.models.loading.load_model`.
    """
    from da_toolkit.models.loading import load_model as _load_model

    return _load_model(preset_or_path, weights=weights, **overrides)
