"""Multi-scale gradient-matching loss on normalised disparity residuals (MiDaS; DA V2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from da_toolkit.losses._masked import check_depth_inputs, mean_over_samples, upcast
from da_toolkit.losses.affine_invariant import normalize_affine


def gradient_term(residual: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``sum(|dx R| + |dy R|) / n_valid`` per sample at one scale.

    ``residual`` and ``mask`` are ``(B,h,w)``; a finite difference counts only when both of its
    pixels are valid; ``n_valid`` is the number of valid pixels. Returns ``((B,), has_valid (B,))``.
    """
    dx = (residual[:, :, 1:] - residual[:, :, :-1]).abs()
    mx = mask[:, :, 1:] & mask[:, :, :-1]
    dy = (residual[:, 1:, :] - residual[:, :-1, :]).abs()
    my = mask[:, 1:, :] & mask[:, :-1, :]
    total = torch.where(mx, dx, torch.zeros_like(dx)).sum(dim=(1, 2))
    total = total + torch.where(my, dy, torch.zeros_like(dy)).sum(dim=(1, 2))
    count = mask.sum(dim=(1, 2))
    return total / count.clamp_min(1).to(residual.dtype), count > 0


class GradientMatchingLoss(nn.Module):
    """Gradient matching of ``R = pred_hat - target_hat`` over ``scales`` dyadic scales.

    Inputs: ``pred``/``target`` ``(B,H,W)`` relative disparity, ``mask`` bool ``(B,H,W)``.
    Both maps are normalised over the full-resolution valid pixels (as in
    :class:`~da_toolkit.losses.AffineInvariantLoss`); at scale ``k`` the residual and mask are
    subsampled with stride ``2**k`` (``R[:, ::2**k, ::2**k]``) and the term
    ``sum(|dx R| + |dy R|) / n_valid`` is computed per sample (differences only between two valid
    pixels). The scale terms are summed (MiDaS), per sample, and averaged over the samples with
    any valid pixel. Unitless scalar; an empty mask gives a zero that backpropagates.

    Args:
        scales: number of scales (4 in MiDaS; unconfirmed for Depth Anything).
    """

    def __init__(self, scales: int = 4) -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"GradientMatchingLoss: scales must be >= 1, got {scales}")
        self.scales = int(scales)

    def extra_repr(self) -> str:
        return f"scales={self.scales}"

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample losses ``(B,)`` and whether each sample has any valid pixel ``(B,)``."""
        mask = check_depth_inputs(type(self).__name__, pred, target, mask)
        pred, target = upcast(pred), upcast(target)
        residual = normalize_affine(pred, mask) - normalize_affine(target.detach(), mask)
        total = torch.zeros(pred.shape[0], dtype=pred.dtype, device=pred.device)
        for k in range(self.scales):
            step = 2**k
            term, _ = gradient_term(residual[:, ::step, ::step], mask[:, ::step, ::step])
            total = total + term
        return total, mask.flatten(1).any(dim=1)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar loss (see the class docstring)."""
        loss, has = self.per_sample(pred, target, mask)
        return mean_over_samples(loss, has)
