"""Scale-invariant logarithmic loss for metric fine-tuning (Depth Anything V2, SPEC 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from da_toolkit.losses._masked import check_depth_inputs, masked_mean, mean_over_samples, upcast


class SiLogLoss(nn.Module):
    """``sqrt(mean(g^2) - lambd * mean(g)^2)``, ``g = log(target) - log(pred)``, per sample.

    Inputs: ``pred`` and ``target`` ``(B,H,W)`` metric depth in metres, ``mask`` bool ``(B,H,W)``.
    Pixels count when valid and ``target > min_depth`` (and ``target <= max_depth`` if given);
    ``pred`` is clamped to ``min_depth`` before the log. Per-sample values are averaged over the
    samples with any counted pixel. The radicand is clamped at 1e-12 so a perfect prediction gives
    finite (zero) gradients. Scalar in log-metres (unitless).

    Args:
        lambd: variance weight (0.5 in DA V2; 1.0 = fully scale-invariant).
        min_depth: smallest valid depth in metres.
        max_depth: largest valid target depth in metres (``None``: no cap).
    """

    def __init__(self, lambd: float = 0.5, min_depth: float = 1e-3, max_depth: float | None = None) -> None:
        super().__init__()
        if not 0.0 <= lambd <= 1.0:
            raise ValueError(f"SiLogLoss: lambd must be in [0, 1], got {lambd}")
        if min_depth <= 0:
            raise ValueError(f"SiLogLoss: min_depth must be > 0, got {min_depth}")
        self.lambd = float(lambd)
        self.min_depth = float(min_depth)
        self.max_depth = None if max_depth is None else float(max_depth)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}, min_depth={self.min_depth}, max_depth={self.max_depth}"

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
        # mean(g^2) - lambd * mean(g)^2 written as var(g) + (1 - lambd) * mean(g)^2 (no cancellation)
        mean_g = masked_mean(g, mask)
        centred = torch.where(mask, g - mean_g[:, None, None], torch.zeros_like(g))
        radicand = masked_mean(centred * centred, mask) + (1.0 - self.lambd) * mean_g**2
        per_sample = torch.sqrt(radicand.clamp_min(1e-12))
        return mean_over_samples(per_sample, mask.flatten(1).any(dim=1))
