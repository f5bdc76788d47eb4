"""Scale-invariant logarithmic loss for metric fine-tuning (Depth Anything V2, SPEC 3)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from da_toolkit.losses.masked import (
    check_depth_inputs,
    masked_mean,
    mean_over_samples,
    upcast,
)

#: ``"batch"``: one loss over all counted pixels of the batch (Depth Anything V2
#: ``metric_depth/util/loss.py``); ``"sample"``: per-sample losses averaged over the samples.
Reduction = Literal["batch", "sample"]


class SiLogLoss(nn.Module):
    """``sqrt(mean(g^2) - lambd * mean(g)^2)``, ``g = log(target) - log(pred)``.

    Inputs: ``pred`` and ``target`` ``(B,H,W)`` metric depth in metres, ``mask`` bool ``(B,H,W)``.
    Pixels count when valid and ``target > min_depth`` (and ``target <= max_depth`` if given);
    ``pred`` is clamped to ``min_depth`` before the log. ``reduction="batch"`` (default, as the
    official V2 loss) pools the counted pixels of the whole batch into one mean;
    ``"sample"`` computes the loss per sample and averages it over the samples with any counted
    pixel. The radicand is clamped at 1e-12 so a perfect prediction gives finite (zero)
    gradients; no counted pixel gives a zero that backpropagates. Scalar in log-metres (unitless).

    Args:
        lambd: variance weight (0.5 in DA V2; 1.0 = fully scale-invariant).
        min_depth: smallest valid depth in metres.
        max_depth: largest valid target depth in metres (``None``: no cap; V2 uses its
            ``--max-depth``, 20 m Hypersim / 80 m Virtual KITTI).
        reduction: ``"batch"`` (V2) or ``"sample"`` (this toolkit's earlier default).
    """

    def __init__(
        self,
        lambd: float = 0.5,
        min_depth: float = 1e-3,
        max_depth: float | None = None,
        reduction: Reduction = "batch",
    ) -> None:
        super().__init__()
        if reduction not in ("batch", "sample"):
            raise ValueError(f"SiLogLoss: reduction must be 'batch' or 'sample', got {reduction!r}")
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f"SiLogLoss: lambd must be in [0, 1], got {lambd}")
        if min_depth <= 0:
            raise ValueError(f"SiLogLoss: min_depth must be > 0, got {min_depth}")
        self.lambd = float(lambd)
        self.min_depth = float(min_depth)
        self.max_depth = None if max_depth is None else float(max_depth)
        self.reduction = reduction

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return (
            f"lambd={self.lambd}, min_depth={self.min_depth}, max_depth={self.max_depth}, reduction={self.reduction!r}"
        )

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar loss (see the class docstring)."""
        mask = check_depth_inputs(type(self).__name__, pred, target, mask)
        pred, target = upcast(pred), upcast(target.detach())
        mask = mask & torch.isfinite(target) & (target > self.min_depth)
        if self.max_depth is not None:
            mask = mask & (target <= self.max_depth)
        safe_target = torch.where(mask, target, torch.ones_like(target))
        safe_pred = torch.where(mask, pred, torch.ones_like(pred)).clamp_min(self.min_depth)
        log_ratio = torch.log(safe_target) - torch.log(safe_pred)
        g = torch.where(mask, log_ratio, torch.zeros_like(pred))
        if self.reduction == "batch":
            return self._pooled(g, mask)
        # mean(g^2) - lambd * mean(g)^2 written as var(g) + (1 - lambd) * mean(g)^2 (no cancellation)
        mean_g = masked_mean(g, mask)
        centred = torch.where(mask, g - mean_g[:, None, None], torch.zeros_like(g))
        radicand = masked_mean(centred * centred, mask) + (1.0 - self.lambd) * mean_g**2
        per_sample = torch.sqrt(radicand.clamp_min(1e-12))
        return mean_over_samples(per_sample, mask.flatten(1).any(dim=1))

    def _pooled(self, g: Tensor, mask: Tensor) -> Tensor:
        """One SiLog over every counted pixel of the batch (``g`` is 0 outside ``mask``)."""
        n = mask.sum().clamp_min(1).to(g.dtype)
        mean_g = g.sum() / n
        centred = torch.where(mask, g - mean_g, torch.zeros_like(g))
        radicand = (centred * centred).sum() / n + (1.0 - self.lambd) * mean_g**2
        loss = torch.sqrt(radicand.clamp_min(1e-12))
        return torch.where(mask.any(), loss, torch.zeros_like(loss))
