"""Teacher training on labeled data: affine-invariant loss (+ optional gradient matching)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from da_toolkit.tasks.base import DepthTask
from da_toolkit.tasks.targets import disparity_targets


def _default_affine(trim: float = 0.0) -> nn.Module:
    from da_toolkit.losses.affine_invariant import AffineInvariantLoss

    return AffineInvariantLoss(trim=trim)


class TeacherTask(DepthTask):
    """Relative-depth teacher (SPEC 3): ``L = L_ssi + gradient_weight * L_gm``.

    Batches follow the batch contract (``batch["labeled"]``: ``image (B,3,H,W)`` in ``[0,1]``,
    ``depth (B,H,W)``, ``valid``, ``depth_kind``); metric targets are turned into per-image
    normalised disparity, disparity/relative targets are used as they are. The model predicts
    relative disparity.

    Args:
        labeled_loss: affine-invariant loss ``(pred, target, mask) -> scalar``
            (default ``AffineInvariantLoss(trim=0)``).
        gradient_loss: optional gradient-matching loss ``(pred, target, mask) -> scalar`` (V2).
        gradient_weight: its weight (V2: ssi:gm = 1:2).
        sky_label: ``seg`` label of sky pixels: in labeled metric samples that carry ``seg``,
            those pixels become valid with disparity 0 (SPEC 3: sky = disparity 0). ``None``
            (default): sky stays invalid, as the data sources mark it. The synthetic source
            labels sky 0.
        **kwargs: model / optimiser / evaluation arguments of :class:`DepthTask`
            (``check_contracts``: the given losses are checked in the labeled form when built).
    """

    def __init__(
        self,
        labeled_loss: nn.Module | None = None,
        gradient_loss: nn.Module | None = None,
        gradient_weight: float = 2.0,
        sky_label: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check_loss_contract(labeled_loss, "labeled", "labeled_loss")
        self.check_loss_contract(gradient_loss, "labeled", "gradient_loss")
        self.labeled_loss = labeled_loss if labeled_loss is not None else _default_affine()
        self.gradient_loss = gradient_loss
        self.gradient_weight = float(gradient_weight)
        self.sky_label = sky_label

    def labeled_targets(self, labeled: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Disparity targets and valid masks ``(B,H,W)`` of a labeled batch (sky per ``sky_label``)."""
        sky = None
        if self.sky_label is not None and "seg" in labeled:
            sky = labeled["seg"] == self.sky_label
        return disparity_targets(labeled["depth"], labeled["valid"], labeled["depth_kind"], sky=sky)

    def labeled_terms(self, labeled: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """Named loss terms on a labeled batch, and the prediction ``(B,H,W)`` disparity."""
        pred = self(labeled["image"])
        target, valid = self.labeled_targets(labeled)
        terms = {"ssi": self.labeled_loss(pred, target, valid)}
        if self.gradient_loss is not None:
            terms["gm"] = self.gradient_loss(pred, target, valid)
        return terms, pred

    def labeled_total(self, terms: dict[str, Tensor]) -> Tensor:
        """The labeled loss plus the weighted gradient-matching term."""
        total = terms["ssi"]
        if "gm" in terms:
            total = total + self.gradient_weight * terms["gm"]
        return total

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """Loss of the labeled batch: (total, terms, prediction)."""
        if "labeled" not in batch:
            raise ValueError("TeacherTask needs labeled batches (batch['labeled']); configure data.labeled")
        terms, pred = self.labeled_terms(batch["labeled"])
        total = self.labeled_total(terms)
        terms["labeled"] = total
        return total, terms, pred
