"""Alignment of predictions to ground-truth depth before computing metrics (SPEC 4)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: ``fn(pred (B,H,W), target (B,H,W) metres, mask (B,H,W) bool, min_depth, max_depth)``
#: -> predicted depth ``(B,H,W)`` in metres, clamped to ``[min_depth, max_depth]``.
AlignFn = Callable[[Tensor, Tensor, Tensor, float, float], Tensor]


def lstsq_scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample ``(s, t)`` minimising ``sum_mask (s * pred + t - target)^2``; each ``(B,)``.

    Closed form of the 2x2 normal equations, computed in float64. A sample whose valid
    predictions are constant (or that has one valid pixel) gets ``s = 0`` and ``t`` = the mean
    target; one with no valid pixel gets ``s = 1, t = 0``. Values outside ``mask`` are ignored,
    even when not finite.
    """
    mb = mask.flatten(1)
    # values outside the mask (even NaN/inf) never reach the sums
    p = torch.where(mb, pred.double().flatten(1), 0.0)
    y = torch.where(mb, target.double().flatten(1), 0.0)
    m = mb.double()
    n = m.sum(dim=1)
    sp = (m * p).sum(dim=1)
    sy = (m * y).sum(dim=1)
    spp = (m * p * p).sum(dim=1)
    spy = (m * p * y).sum(dim=1)
    det = n * spp - sp * sp
    # a degenerate system (constant pred) is detected relative to the size of its terms
    ok = det > 1e-12 * (n * spp).clamp_min(1e-300)
    safe_det = torch.where(ok, det, torch.ones_like(det))
    scale = torch.where(ok, (n * spy - sp * sy) / safe_det, torch.zeros_like(det))
    shift = torch.where(ok, (sy - scale * sp) / n.clamp_min(1), sy / n.clamp_min(1))
    empty = n == 0
    scale = torch.where(empty, torch.ones_like(scale), scale)
    shift = torch.where(empty, torch.zeros_like(shift), shift)
    return scale, shift


def _masked_median(x: Tensor, mask: Tensor) -> Tensor:
    flat = x.flatten(1).masked_fill(~mask.flatten(1), float("nan"))
    return torch.nan_to_num(torch.nanmedian(flat, dim=1).values, nan=1.0)


def align_none(pred: Tensor, target: Tensor, mask: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """Metric predictions in metres, only clamped to ``[min_depth, max_depth]``."""
    return pred.clamp(min_depth, max_depth)


def align_median(pred: Tensor, target: Tensor, mask: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """Depth predictions (any scale) times ``median(target) / median(pred)`` over the mask (lower
    medians), then clamped. A non-positive median of ``pred`` leaves it unscaled."""
    med_pred = _masked_median(pred, mask)
    med_target = _masked_median(target, mask)
    ratio = torch.where(med_pred > 0, med_target / torch.where(med_pred > 0, med_pred, 1.0), 1.0)
    return (pred * ratio[:, None, None]).clamp(min_depth, max_depth)


#: Marigold's floor of the aligned disparity before inversion (1/m): "avoid 0 disparity".
DISPARITY_FLOOR = 1e-3


def _disparity_fit(
    pred: Tensor, target: Tensor, mask: Tensor, fit_mask: Tensor, min_depth: float, max_depth: float
) -> Tensor:
    """Fit ``s, t`` on ``fit_mask`` in disparity space, then floor, invert and clamp (Marigold)."""
    inv = torch.where(mask, 1.0 / target.clamp_min(min_depth), torch.zeros_like(target))
    scale, shift = lstsq_scale_shift(pred, inv, fit_mask)
    aligned = scale[:, None, None] * pred.double() + shift[:, None, None]
    depth = 1.0 / aligned.clamp_min(DISPARITY_FLOOR)
    return depth.clamp(min_depth, max_depth).to(pred.dtype)


def align_lstsq_disparity(pred: Tensor, target: Tensor, mask: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """Zero-shot protocol (Marigold's ``least_square_disparity``, the default).

    ``pred`` is relative disparity. ``s, t`` minimise ``sum (s * pred + t - 1/target)^2`` over the
    pixels of ``mask`` whose prediction is **positive** (non-positive predictions, e.g. ReLU
    zeros, are left out of the fit but still evaluated); the aligned disparity is floored at
    :data:`DISPARITY_FLOOR` (1e-3 1/m), inverted, and the depth clamped to
    ``[min_depth, max_depth]`` metres. No positive prediction in ``mask``: ``s = 1, t = 0``.
    """
    return _disparity_fit(pred, target, mask, mask & (pred > 0), min_depth, max_depth)


def align_lstsq_disparity_all(pred: Tensor, target: Tensor, mask: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """As :func:`align_lstsq_disparity`, but the fit uses every pixel of ``mask``, non-positive
    predictions included (MiDaS' KITTI validation rule; this toolkit's rule before it followed
    Marigold)."""
    return _disparity_fit(pred, target, mask, mask, min_depth, max_depth)


def align_lstsq_depth(pred: Tensor, target: Tensor, mask: Tensor, min_depth: float, max_depth: float) -> Tensor:
    """``pred`` is affine-invariant depth; fit ``s, t`` minimising ``sum (s * pred + t - target)^2``
    over the mask, then clamp to ``[min_depth, max_depth]``."""
    scale, shift = lstsq_scale_shift(pred, target, mask)
    aligned = scale[:, None, None] * pred.double() + shift[:, None, None]
    return aligned.clamp(min_depth, max_depth).to(pred.dtype)


#: Alignment mode name -> function (the ``alignment`` option of ``DepthMetrics``).
ALIGNMENTS: dict[str, AlignFn] = {
    "none": align_none,
    "median": align_median,
    "lstsq-disparity": align_lstsq_disparity,
    "lstsq-disparity-all": align_lstsq_disparity_all,
    "lstsq-depth": align_lstsq_depth,
}
