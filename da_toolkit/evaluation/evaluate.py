"""Zero-shot / metric evaluation of depth models on data sources, one DepthMetrics per set."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    metrics: nn.Module,
    input_size: int = 518,
    limit: int | None = None,
    desc: str = "eval",
) -> dict[str, float]:
    """Metrics of ``model`` on every labeled item of ``dataset`` (official preprocessing).

    Each image goes through the inference core
    (:func:`da_toolkit.models.inference_core.predict_rgb`: resize keeping the aspect, shorter
    side >= ``input_size``, sides multiples of the model's input multiple, bilinear upsampling
    back with the model's rule), then
    ``metrics.update(pred, depth, valid)`` with the GT in metres; ``metrics`` (a ``DepthMetrics``)
    does the alignment (least squares in disparity for relative models), caps and crops.

    Returns:
        ``{metric name: value}`` plus ``num_images``.
    """
    from tqdm import tqdm

    from da_toolkit.models.inference_core import predict_rgb

    was_training = model.training
    model.eval()
    metrics.reset()
    n = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]
    used = 0
    with torch.no_grad():
        for i in tqdm(range(n), desc=desc, file=sys.stderr, leave=False, disable=n < 20):
            sample = dataset[i]
            if "depth" not in sample:
                raise ValueError(f"evaluation set item {i} ({sample.get('meta', {}).get('id')}) has no depth")
            if sample.get("depth_kind", "metric") != "metric":
                raise ValueError(f"evaluation needs metric ground truth; item {i} has depth_kind "
                                 f"{sample.get('depth_kind')!r}")
            pred = predict_rgb(model, sample["image"], input_size=input_size)
            metrics.update(torch.from_numpy(np.ascontiguousarray(pred))[None],
                           torch.from_numpy(np.ascontiguousarray(sample["depth"], dtype=np.float32))[None],
                           torch.from_numpy(np.ascontiguousarray(sample["valid"], dtype=bool))[None])
            used += 1
    model.train(was_training)
    out = {k: float(v) for k, v in metrics.compute().items()}
    out["num_images"] = used
    return out


def format_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 columns: tuple[str, ...] = ("abs_rel", "delta1", "rmse")) -> str:
    """Plain-text table: one row per (model, set), the chosen metric columns."""
    header = ["model", "set", *columns]
    rows = [header]
    for model, sets in results.items():
        for name, values in sets.items():
            cells = [model, name]
            for c in columns:
                v = values.get(c)
                cells.append("-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}")
            rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
