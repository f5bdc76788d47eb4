"""A tiny Depth Anything model for tests (no weights, fast on a CPU)."""

from __future__ import annotations

from typing import Any

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.description import (
    build_model,
    preset_description,
    with_overrides,
)

__all__ = ["build_tiny_model"]


def build_tiny_model(max_depth: float | None = None, **overrides: Any) -> DepthModel:
    """Random tiny model: DINOv2 of 2 blocks, width 32, 2 heads, patch 14 + DPT with 16 features.

    Inputs ``(B,3,H,W)`` need sides that are multiples of 14 (e.g. 28, 42, 56); the output is
    ``(B,H,W)`` relative disparity (``max_depth=None``, ReLU head) or metres in
    ``(0, max_depth)`` (Sigmoid head). Returned in training mode; ``**overrides`` as for
    :func:`da_toolkit.models.load_model` (e.g. ``use_clstoken=True``).
    """
    return build_model(with_overrides(preset_description("tiny"), {"max_depth": max_depth, **overrides}))
