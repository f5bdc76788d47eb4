"""Multi-scale gradient-matching loss on normalised disparity residuals (MiDaS; DA V2)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from da_toolkit.losses.affine_invariant import normalize_affine
from da_toolkit.losses.masked import check_depth_inputs, mean_over_samples, upcast

#: ``"batch"``: per scale, the gradient sums of all samples over their total valid-pixel count
#: (MiDaS ``reduction_batch_based``, the default of its ``GradientLoss``, which Depth Anything V2
#: adapted); ``"sample"``: per-sample values averaged over the samples (``reduction_image_based``).
Reduction = Literal["batch", "sample"]


def gradient_sums(residual: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum(|dx R| + |dy R|), n_valid)`` per sample at one scale, each ``(B,)``.

    ``residual`` and ``mask`` are ``(B,h,w)``; a finite difference counts only when both of its
    pixels are valid; ``n_valid`` is the number of valid pixels (in the residual's dtype).
    """
    dx = (residual[:, :, 1:] - residual[:, :, :-1]).abs()
    mx = mask[:, :, 1:] & mask[:, :, :-1]
    dy = (residual[:, 1:, :] - residual[:, :-1, :]).abs()
    my = mask[:, 1:, :] & mask[:, :-1, :]
    total = torch.where(mx, dx, torch.zeros_like(dx)).sum(dim=(1, 2))
    total = total + torch.where(my, dy, torch.zeros_like(dy)).sum(dim=(1, 2))
    return total, mask.sum(dim=(1, 2)).to(residual.dtype)


def gradient_term(residual: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """``sum(|dx R| + |dy R|) / n_valid`` per sample at one scale: ``((B,), has_valid (B,))``."""
    total, count = gradient_sums(residual, mask)
    return total / count.clamp_min(1), count > 0


class GradientMatchingLoss(nn.Module):
    """Gradient matching of ``R = pred_hat - target_hat`` over ``scales`` dyadic scales.

    Inputs: ``pred``/``target`` ``(B,H,W)`` relative disparity, ``mask`` bool ``(B,H,W)``.
    Both maps are normalised over the full-resolution valid pixels (as in
    :class:`~da_toolkit.losses.AffineInvariantLoss`); at scale ``k`` the residual and mask are
    subsampled with stride ``2**k`` (``R[:, ::2**k, ::2**k]``) and the absolute finite differences
    ``|dx R| + |dy R|`` are summed (differences only between two valid pixels). The scale terms
    are summed (MiDaS). ``reduction="batch"`` (default, MiDaS' and so Depth Anything V2's): each
    scale term is the sum over the batch divided by the batch's valid-pixel count at that scale;
    ``"sample"``: each sample's sum over its own count, averaged over the samples with any valid
    pixel. Both are equal for a batch of one. Unitless scalar; an empty mask gives a zero that
    backpropagates.

    Args:
        scales: number of scales (4 in MiDaS; Depth Anything V2 adapted MiDaS' loss).
        reduction: ``"batch"`` (MiDaS) or ``"sample"`` (this toolkit's earlier default).
    """

    def __init__(self, scales: int = 4, reduction: Reduction = "batch") -> None:
        super().__init__()
        if scales < 1:
            raise ValueError(f"GradientMatchingLoss: scales must be >= 1, got {scales}")
        if reduction not in ("batch", "sample"):
            raise ValueError(f"GradientMatchingLoss: reduction must be 'batch' or 'sample', got {reduction!r}")
        self.scales = int(scales)
        self.reduction = reduction

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return f"scales={self.scales}, reduction={self.reduction!r}"

    def _residual(self, pred: Tensor, target: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        mask = check_depth_inputs(type(self).__name__, pred, target, mask)
        pred, target = upcast(pred), upcast(target)
        return normalize_affine(pred, mask) - normalize_affine(target.detach(), mask), mask

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample losses ``(B,)`` (each over its own valid pixels) and whether each sample has
        any valid pixel ``(B,)``."""
        residual, mask = self._residual(pred, target, mask)
        total = torch.zeros(residual.shape[0], dtype=residual.dtype, device=residual.device)
        for k in range(self.scales):
            step = 2**k
            term, _ = gradient_term(residual[:, ::step, ::step], mask[:, ::step, ::step])
            total = total + term
        return total, mask.flatten(1).any(dim=1)

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scalar loss (see the class docstring)."""
        if self.reduction == "sample":
            loss, has = self.per_sample(pred, target, mask)
            return mean_over_samples(loss, has)
        residual, mask = self._residual(pred, target, mask)
        total = residual.new_zeros(())
        for k in range(self.scales):
            step = 2**k
            sums, counts = gradient_sums(residual[:, ::step, ::step], mask[:, ::step, ::step])
            total = total + sums.sum() / counts.sum().clamp_min(1)
        return total
