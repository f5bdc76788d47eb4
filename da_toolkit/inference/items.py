"""What an inference step produces per input item."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from da_toolkit.models.licence import UNKNOWN

#: ``DepthModel.output_kind`` values: relative disparity (affine-invariant) or metres
OUTPUT_KINDS = ("disparity", "metric")


@dataclass
class PredictionItem:
    """One prediction of ``da-toolkit predict`` / :class:`~da_toolkit.inference.Predictor`.

    Attributes:
        depth: ``(H,W)`` float32 at the input's original size: relative disparity (bigger =
            nearer, unknown scale/shift) when ``output_kind == "disparity"``, metres when
            ``"metric"``; ``None`` when the item failed.
        meta: ``id`` (output path stem relative to the input root, "/"-separated), ``source``
            (input file), and for video frames ``video`` (video id), ``frame`` (index), ``fps``.
        output_kind: ``"disparity"`` or ``"metric"``.
        image: the input ``(H,W,3)`` uint8 RGB (for side-by-side outputs), if kept.
        error: why the item failed (decoding, model), or ``None``.
        provenance: ``{"licence": ..., "origin": ...}`` of the model's weights
            (:func:`da_toolkit.models.licence.provenance`; ``licence`` ``"unknown"`` when the model
            carries none), written into the metadata of the outputs that have any.
    """

    depth: np.ndarray | None
    meta: dict[str, Any] = field(default_factory=dict)
    output_kind: str = "disparity"
    image: np.ndarray | None = None
    error: str | None = None
    provenance: dict[str, str] = field(default_factory=lambda: {"licence": UNKNOWN})


def output_path(output_dir: str | Path, meta: dict[str, Any], suffix: str) -> Path:
    """Where an item's output goes: ``output_dir/<id><suffix>``, video frames under ``<video>/``."""
    root = Path(output_dir)
    if meta.get("frame") is not None:
        return root / str(meta["video"]) / f"{int(meta['frame']):06d}{suffix}"
    return root / f"{meta['id']}{suffix}"
