"""CutMix-aware losses for the student on mixed unlabeled images (SPEC 3).

:class:`CutMixRegionLoss` turns any region loss ``(pred, target, mask) -> scalar`` into the
student's CutMix-aware signature ``(pred, target_a, target_b, mask, valid) -> scalar``;
:class:`CutMixAffineInvariantLoss` is that wrapper around the affine-invariant loss (the
default unlabeled loss of :class:`~da_toolkit.tasks.StudentTask`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from da_toolkit.losses.affine_invariant import AffineInvariantLoss
from da_toolkit.losses.masked import check_depth_inputs, mean_over_samples

__all__ = ["CutMixAffineInvariantLoss", "CutMixRegionLoss"]


class CutMixRegionLoss(nn.Module):
    """Area-weighted sum of a region loss over the two regions of a CutMix image.

    With ``u_ab = u_a * M + u_b * (1 - M)`` (``M`` = ``mask``, True where the pixel comes from
    ``u_a``; see :class:`da_toolkit.perturb.CutMix`), per sample::

        L = (sum M / HW) * R(pred, target_a, M & valid) + (sum (1-M) / HW) * R(pred, target_b, ~M & valid)

    where ``R`` is ``region_loss`` evaluated on that sample alone and restricted to the region
    (so a scale-and-shift-invariant loss normalises each region on its own). The per-sample
    losses are averaged over the samples with any valid pixel; with ``M`` all True this is
    ``R(pred, target_a, valid)`` averaged over the samples.

    ``region_loss`` is any module ``(pred (B,H,W), target (B,H,W), mask bool (B,H,W)) -> scalar``
    (the labeled-loss contract). If it also has ``per_sample(pred, target, mask) -> (loss (B,),
    has_valid (B,) bool)`` (as :class:`~da_toolkit.losses.AffineInvariantLoss` does) the batch is
    computed in one call; otherwise it is called once per sample and region, on ``(1,H,W)``
    slices, and never on a region without valid pixels (that region contributes 0).

    Inputs of ``forward``: ``pred`` ``(B,H,W)`` student output on ``u_ab``; ``target_a`` /
    ``target_b`` ``(B,H,W)`` teacher output on the clean ``u_a`` / ``u_b`` (``target_b =
    teacher[pairing]``); ``mask`` bool ``(B,H,W)``; ``valid`` optional bool ``(B,H,W)``. Returns
    a scalar; no valid pixel at all gives a zero that still backpropagates.

    Args:
        region_loss: the loss applied to each region.
    """

    def __init__(self, region_loss: nn.Module) -> None:
        super().__init__()
        if not callable(region_loss):
            raise TypeError(f"CutMixRegionLoss: region_loss must be a callable loss module, got {type(region_loss).__name__}")
        self.region_loss = region_loss

    def region_per_sample(self, pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample region losses ``(B,)`` and whether each sample has a valid pixel ``(B,)``."""
        per_sample: Callable[..., tuple[Tensor, Tensor]] | None = getattr(self.region_loss, "per_sample", None)
        if callable(per_sample):
            return per_sample(pred, target, mask)
        has = mask.flatten(1).any(dim=1)
        losses = []
        for i, has_i in enumerate(has.tolist()):
            if has_i:
                losses.append(self.region_loss(pred[i : i + 1], target[i : i + 1], mask[i : i + 1]).reshape(()))
            else:  # a zero attached to pred's graph (no NaN can leak through the where)
                losses.append(torch.where(mask[i], pred[i], torch.zeros_like(pred[i])).sum())
        return torch.stack(losses), has

    def forward(
        self,
        pred: Tensor,
        target_a: Tensor,
        target_b: Tensor,
        mask: Tensor,
        valid: Tensor | None = None,
    ) -> Tensor:
        """Scalar loss (see the class docstring)."""
        name = type(self).__name__
        valid = check_depth_inputs(name, pred, target_a, valid)
        check_depth_inputs(name, pred, target_b, mask)
        area = mask.flatten(1).to(pred.dtype).mean(dim=1)
        if callable(getattr(self.region_loss, "per_sample", None)):
            # both regions in one batched call (2B samples; the per-sample losses are independent):
            # half the kernel launches of two calls, the same values
            b = pred.shape[0]
            losses, has = self.region_per_sample(torch.cat([pred, pred]), torch.cat([target_a, target_b]),
                                                 torch.cat([mask & valid, ~mask & valid]))
            loss_a, loss_b, has_a, has_b = losses[:b], losses[b:], has[:b], has[b:]
        else:
            loss_a, has_a = self.region_per_sample(pred, target_a, mask & valid)
            loss_b, has_b = self.region_per_sample(pred, target_b, ~mask & valid)
        per_sample = area * loss_a + (1.0 - area) * loss_b
        return mean_over_samples(per_sample, has_a | has_b)


class CutMixAffineInvariantLoss(CutMixRegionLoss):
    """:class:`CutMixRegionLoss` of :class:`AffineInvariantLoss` with ``trim`` (SPEC 3).

    ``L_aff`` with trimming is restricted to each region (and to ``valid``), each region
    normalised on its own; with ``M`` all True this is exactly ``L_aff(pred, target_a)``.

    Args:
        trim: fraction of the largest per-pixel losses of each region to ignore (0.1 for
            pseudo-labels).
    """

    def __init__(self, trim: float = 0.1) -> None:
        super().__init__(AffineInvariantLoss(trim=trim))

    @property
    def trim(self) -> float:
        """The trimmed fraction of each region."""
        return self.region_loss.trim
