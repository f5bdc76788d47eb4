"""Turning labeled batches into the disparity targets the relative losses compare against."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: depth kinds whose values are already (relative) disparity: bigger = nearer
DISPARITY_KINDS = frozenset({"disparity", "relative"})
METRIC_KIND = "metric"


def disparity_targets(
    depth: Tensor, valid: Tensor, depth_kind: Sequence[str], sky: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample disparity targets ``(B,H,W)`` and valid masks ``(B,H,W)`` bool.

    Samples of kind ``metric`` (metres) become ``1/depth`` normalised to ``[0,1]`` per image
    (:func:`da_toolkit.losses.targets.depth_to_normalized_disparity`); ``disparity`` and
    ``relative`` samples are kept as they are (affine-invariant losses ignore their scale).
    Non-finite values are masked out. ``sky`` (bool ``(B,H,W)``, optional) marks sky pixels of
    metric samples: they become valid with disparity 0 (SPEC 3).
    """
    from da_toolkit.losses.targets import depth_to_normalized_disparity

    if len(depth_kind) != depth.shape[0]:
        raise ValueError(f"batch depth_kind has {len(depth_kind)} entries for {depth.shape[0]} depth maps")
    unknown = sorted(set(depth_kind) - DISPARITY_KINDS - {METRIC_KIND})
    if unknown:
        raise ValueError(
            f"batch depth_kind: unknown kind(s) {unknown}; expected 'metric', 'disparity' or 'relative'"
        )
    valid = valid & torch.isfinite(depth)
    is_metric = torch.tensor([k == METRIC_KIND for k in depth_kind], device=depth.device)
    if not bool(is_metric.any()):
        return torch.nan_to_num(depth), valid
    disp_m, valid_m = depth_to_normalized_disparity(torch.nan_to_num(depth, nan=0.0, posinf=0.0), valid, sky=sky)
    sel = is_metric[:, None, None]
    return torch.where(sel, disp_m, torch.nan_to_num(depth)), torch.where(sel, valid_m, valid)


def metric_targets(depth: Tensor, valid: Tensor, depth_kind: Sequence[str], min_depth: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Metric depth targets (metres) for metric fine-tuning; every sample must be ``metric``."""
    bad = sorted({k for k in depth_kind if k != METRIC_KIND})
    if bad:
        raise ValueError(
            f"metric fine-tuning needs depth_kind 'metric' (metres) for every labeled sample, got {bad}"
        )
    valid = valid & torch.isfinite(depth) & (depth > min_depth)
    return torch.where(valid, depth, torch.ones_like(depth)), valid
