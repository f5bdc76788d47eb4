"""Scale-and-shift-aligned L1 loss (least squares alignment) and its CutMix-aware form."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from da_toolkit.losses import CutMixRegionLoss
from da_toolkit.losses.masked import (
    check_depth_inputs,
    masked_mean,
    mean_over_samples,
    upcast,
)


def align_scale_shift(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample least-squares ``s, t`` ``(B,)`` minimising ``sum_mask (s * pred + t - target)^2``.

    Closed form over the valid pixels (``n`` of them): ``s = cov(pred, target) / var(pred)``,
    ``t = mean(target) - s * mean(pred)``. A constant ``pred`` (zero variance) gets ``s = 0``,
    ``t = mean(target)``; a sample without valid pixels gets ``s = t = 0``.
    """
    mean_p, mean_t = masked_mean(pred, mask), masked_mean(target, mask)
    dp = pred - mean_p[:, None, None]
    dt = target - mean_t[:, None, None]
    var = masked_mean(dp * dp, mask)
    cov = masked_mean(dp * dt, mask)
    s = torch.where(var > 1e-12, cov / var.clamp_min(1e-12), torch.zeros_like(var))
    return s, mean_t - s * mean_p


class ScaleShiftL1Loss(nn.Module):
    """``mean |s * pred + t - target|`` per sample over valid pixels, ``s, t`` by least squares.

    Inputs (the labeled-loss contract): ``pred`` and ``target`` ``(B,H,W)`` relative disparity
    (any scale and shift), ``mask`` bool ``(B,H,W)`` (True = valid; ``None`` = all valid).
    The target is not differentiated; the alignment is (as in MiDaS). Returns a scalar in target
    units, averaged over the samples with any valid pixel; no valid pixel gives a zero that
    still backpropagates.
    """

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample losses ``(B,)`` and whether each sample has any valid pixel ``(B,)``."""
        mask = check_depth_inputs(type(self).__name__, pred, target, mask)
        pred, target = upcast(pred), upcast(target.detach())
        pred = torch.where(mask, pred, torch.zeros_like(pred))  # invalid values never reach the maths
        target = torch.where(mask, target, torch.zeros_like(target))
        s, t = align_scale_shift(pred, target, mask)
        residual = (s[:, None, None] * pred + t[:, None, None] - target).abs()
        return masked_mean(residual, mask), mask.flatten(1).any(dim=1)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar loss (see the class docstring)."""
        loss, has = self.per_sample(pred, target, mask)
        return mean_over_samples(loss, has)


class CutMixScaleShiftL1Loss(CutMixRegionLoss):
    """:class:`ScaleShiftL1Loss` made CutMix-aware by da-toolkit's public wrapper.

    ``forward(pred, target_a, target_b, mask, valid=None) -> scalar`` (the student's unlabeled
    loss contract): each CutMix region is aligned and scored on its own, weighted by its area.
    """

    def __init__(self) -> None:
        super().__init__(ScaleShiftL1Loss())
