"""CutMix-aware affine-invariant loss for the student on mixed unlabeled images (SPEC 3)."""

from __future__ import annotations

from torch import Tensor, nn

from da_toolkit.losses._masked import check_depth_inputs, mean_over_samples
from da_toolkit.losses.affine_invariant import AffineInvariantLoss


class CutMixAffineInvariantLoss(nn.Module):
    """Area-weighted affine-invariant loss over the two regions of a CutMix image.

    With ``u_ab = u_a * M + u_b * (1 - M)`` (``M`` = ``mask``, True where the pixel comes from
    ``u_a``; see :class:`da_toolkit.perturb.CutMix`), per sample::

        L = (sum M / HW) * L_aff(pred on M, target_a on M)
          + (sum (1-M) / HW) * L_aff(pred on 1-M, target_b on 1-M)

    where ``L_aff`` is :class:`AffineInvariantLoss` (with ``trim``) restricted to that region (and
    to ``valid``), each region normalised on its own. The per-sample losses are averaged over the
    samples with any valid pixel. With ``M`` all True this is exactly ``L_aff(pred, target_a)``.

    Inputs: ``pred`` ``(B,H,W)`` student disparity on ``u_ab``; ``target_a``/``target_b``
    ``(B,H,W)`` teacher disparity on the clean ``u_a``/``u_b`` (``target_b = teacher[pairing]``);
    ``mask`` bool ``(B,H,W)``; ``valid`` optional bool ``(B,H,W)``.

    Args:
        trim: fraction of the largest per-pixel losses of each region to ignore (0.1 for
            pseudo-labels).
    """

    def __init__(self, trim: float = 0.1) -> None:
        super().__init__()
        self.region_loss = AffineInvariantLoss(trim=trim)

    @property
    def trim(self) -> float:
        """The trimmed fraction of each region."""
        return self.region_loss.trim

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
        loss_a, has_a = self.region_loss.per_sample(pred, target_a, mask & valid)
        loss_b, has_b = self.region_loss.per_sample(pred, target_b, ~mask & valid)
        per_sample = area * loss_a + (1.0 - area) * loss_b
        return mean_over_samples(per_sample, has_a | has_b)
