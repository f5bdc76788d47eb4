"""Student training (SPEC 3): labeled + pseudo-labeled batches, strong perturbations, CutMix,
feature alignment to a frozen encoder, optional auxiliary segmentation, optional online teacher."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders.base import Encoder
from da_toolkit.tasks.model_spec import freeze, frozen_copy
from da_toolkit.tasks.teacher import TeacherTask


def _default_cutmix_loss() -> nn.Module:
    from da_toolkit.losses.cutmix import CutMixAffineInvariantLoss

    return CutMixAffineInvariantLoss(trim=0.1)


def _mask_bhw(mask: Tensor) -> Tensor:
    return (mask[:, 0] if mask.dim() == 4 else mask).bool()


class StudentTask(TeacherTask):
    """Depth Anything student.

    Every training batch holds ``labeled`` (ground truth) and ``unlabeled`` images (1:2 in the
    paper). Pseudo-labels of the unlabeled part come from ``batch["unlabeled"]["depth"]`` (the
    offline store read by ``PseudoLabelSource``) or, if absent, from an online frozen ``teacher``
    run on the clean images. The unlabeled images then get
    the photometric ``perturbation`` and ``cutmix``; the loss is the CutMix-aware affine-invariant
    loss with 10% trimming. Feature alignment compares the student's encoder features on the
    unlabeled input with those of a frozen encoder on the same input. The total is the weighted
    mean of the active terms (labeled, unlabeled, feature).

    Optional components are off when ``None`` (the recipes list the paper's choices explicitly).

    Args:
        labeled_loss: affine-invariant loss on labeled data (default: no trimming).
        gradient_loss: optional gradient matching on labeled data; ``gradient_weight`` its weight.
        unlabeled_loss: ``(pred, target_a, target_b, mask, valid) -> scalar`` CutMix-aware loss
            (default ``CutMixAffineInvariantLoss(trim=0.1)``).
        perturbation: photometric strong perturbation ``(B,3,H,W) -> (B,3,H,W)`` in ``[0,1]``
            (e.g. ``strong_photometric``); ``None`` = off.
        perturb_labeled: also apply ``perturbation`` to the labeled images (off by default, as in
            the paper: only unlabeled images are perturbed; CutMix never touches labeled images).
        cutmix: mixing module returning ``(mixed, mask, pairing)``; ``None`` = off.
        feature_loss: e.g. ``FeatureAlignmentLoss(margin=0.85)``; ``None`` = off.
        frozen_encoder: the frozen alignment target; default: a frozen copy of the student's
            encoder right after initialisation (i.e. the pretrained DINOv2 when
            ``encoder_weights`` is a DINOv2 file, as in the paper).
        frozen_encoder_weights: encoder weights loaded into the frozen encoder.
        feature_levels: encoder feature levels aligned (default: the last one).
        seg_head: optional auxiliary segmentation head ``(features, (H,W)) -> logits``
            (given together with ``seg_loss``).
        seg_loss: auxiliary segmentation loss ``(logits (B,C,H,W), seg (B,H,W)) -> scalar`` on
            ``batch["labeled"]["seg"]``.
        seg_weight: weight of the segmentation term in the labeled loss.
        teacher: online teacher: a frozen model kept in memory that labels the clean unlabeled
            images when the batch carries no offline pseudo-labels. A model description like
            ``model`` (e.g. ``{preset: depth-anything-v2-vits, weights: FILE}`` or a teacher
            ``.ckpt`` that records its model); ``None`` = offline pseudo-labels only.
        labeled_weight: weight of the labeled term in the mean of the active terms.
        unlabeled_weight: weight of the unlabeled (pseudo-labeled) term in the mean.
        feature_weight: weight of the feature-alignment term in the mean.
        **kwargs: model / optimiser / evaluation arguments of
            :class:`~da_toolkit.tasks.base.DepthTask`.
    """

    def __init__(
        self,
        labeled_loss: nn.Module | None = None,
        gradient_loss: nn.Module | None = None,
        gradient_weight: float = 2.0,
        unlabeled_loss: nn.Module | None = None,
        perturbation: nn.Module | None = None,
        perturb_labeled: bool = False,
        cutmix: nn.Module | None = None,
        feature_loss: nn.Module | None = None,
        frozen_encoder: Encoder | None = None,
        frozen_encoder_weights: str | None = None,
        feature_levels: Sequence[int] = (-1,),
        seg_head: nn.Module | None = None,
        seg_loss: nn.Module | None = None,
        seg_weight: float = 1.0,
        teacher: DepthModel | None = None,
        labeled_weight: float = 1.0,
        unlabeled_weight: float = 1.0,
        feature_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(labeled_loss=labeled_loss, gradient_loss=gradient_loss,
                         gradient_weight=gradient_weight, **kwargs)
        self._check_student_contracts(unlabeled_loss, teacher, frozen_encoder)
        self.unlabeled_loss = unlabeled_loss if unlabeled_loss is not None else _default_cutmix_loss()
        self.perturbation = perturbation
        self.perturb_labeled = bool(perturb_labeled)
        self.cutmix = cutmix
        self.feature_loss = feature_loss
        self.feature_levels = tuple(int(i) for i in feature_levels)
        self.frozen_encoder: nn.Module | None = None
        if feature_loss is not None:
            base = frozen_encoder if frozen_encoder is not None else self.model.encoder
            if frozen_encoder_weights is not None:
                from da_toolkit.models.weights import load_encoder_weights

                base = frozen_copy(base)
                load_encoder_weights(base, frozen_encoder_weights)
            self.frozen_encoder = frozen_copy(base)
        if (seg_head is None) != (seg_loss is None):
            raise ValueError("seg_head and seg_loss must be given together (auxiliary segmentation)")
        self.seg_head = seg_head
        self.seg_loss = seg_loss
        self.seg_weight = float(seg_weight)
        self.teacher: nn.Module | None = freeze(teacher) if teacher is not None else None
        if teacher is not None and not getattr(teacher, "weights_loaded", True):
            warnings.warn("StudentTask: the online teacher has random weights (no teacher weights loaded); "
                          "its pseudo-labels are noise - set teacher.init_args.weights", UserWarning, stacklevel=2)
        self.weights = {"labeled": labeled_weight, "unlabeled": unlabeled_weight, "feature": feature_weight}

    def _check_student_contracts(self, unlabeled_loss: nn.Module | None, teacher: nn.Module | None,
                                 frozen_encoder: nn.Module | None) -> None:
        """Contract checks of the student's own components (``check_contracts``), naming their keys."""
        self.check_loss_contract(unlabeled_loss, "cutmix", "unlabeled_loss")
        if not self.check_contracts:
            return
        from da_toolkit.models.contract import check_encoder, check_model
        from da_toolkit.tasks.base import one_thread

        with one_thread():
            if teacher is not None:
                check_model(teacher, "model.init_args.teacher")
            if frozen_encoder is not None:
                check_encoder(frozen_encoder, "model.init_args.frozen_encoder")

    def train(self, mode: bool = True) -> StudentTask:
        """Set training mode, keeping the frozen encoder and the teacher in eval mode."""
        super().train(mode)
        for frozen in (self.frozen_encoder, self.teacher):
            if frozen is not None:
                frozen.eval()  # frozen modules never switch to training behaviour
        return self

    # ------------------------------------------------------------------ pseudo-labels
    @torch.no_grad()
    def pseudo_labels(self, unlabeled: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """Teacher disparity ``(B,H,W)`` of the clean unlabeled images and its valid mask."""
        if "depth" in unlabeled:
            depth = unlabeled["depth"].float()
            valid = unlabeled.get("valid", torch.ones_like(depth, dtype=torch.bool))
            return torch.nan_to_num(depth), valid & torch.isfinite(depth)
        if self.teacher is None:
            raise ValueError(
                "unlabeled batch has no pseudo-labels ('depth') and no online teacher is configured: "
                "use the pseudo-label store (PseudoLabelSource) or set the online `teacher`"
            )
        from da_toolkit.models.preprocess import normalize

        pred = self.teacher(normalize(unlabeled["image"]))
        return pred.float(), torch.isfinite(pred)

    # ------------------------------------------------------------------ losses
    def unlabeled_terms(self, unlabeled: dict[str, Any]) -> dict[str, Tensor]:
        """Unlabeled (CutMix-aware) and feature-alignment terms on the unlabeled part."""
        images = unlabeled["image"]
        target, valid = self.pseudo_labels(unlabeled)
        x = self.perturbation(images) if self.perturbation is not None else images
        b = images.shape[0]
        mask = torch.ones_like(target, dtype=torch.bool)
        pairing = torch.arange(b, device=images.device)
        if self.cutmix is not None:
            out = self.cutmix(x)
            x, mask, pairing = out[0], _mask_bhw(out[1]), out[2].long()
        pred, enc = self(x, return_features=True)
        valid_mix = torch.where(mask, valid, valid[pairing])
        terms = {"unlabeled": self.unlabeled_loss(pred, target, target[pairing], mask, valid_mix)}
        if self.feature_loss is not None and self.frozen_encoder is not None:
            from da_toolkit.models.preprocess import normalize

            with torch.no_grad():
                frozen = self.frozen_encoder(normalize(x))
            student_f = [enc.features[i] for i in self.feature_levels]
            frozen_f = [frozen.features[i] for i in self.feature_levels]
            terms["feature"] = self.feature_loss(student_f, frozen_f)
        return terms

    def labeled_terms(self, labeled: dict[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """Loss terms of the labeled batch (plus the segmentation term when a head is set), and the prediction."""
        if self.seg_head is None or "seg" not in labeled:
            return super().labeled_terms(labeled)
        pred, enc = self(labeled["image"], return_features=True)
        target, valid = self.labeled_targets(labeled)
        terms = {"ssi": self.labeled_loss(pred, target, valid)}
        if self.gradient_loss is not None:
            terms["gm"] = self.gradient_loss(pred, target, valid)
        logits = self.seg_head(list(enc.features), tuple(labeled["image"].shape[-2:]))
        terms["seg"] = self.seg_loss(logits, labeled["seg"])
        return terms, pred

    def labeled_total(self, terms: dict[str, Tensor]) -> Tensor:
        """Weighted sum of the labeled terms (segmentation included)."""
        total = super().labeled_total(terms)
        if "seg" in terms:
            total = total + self.seg_weight * terms["seg"]
        return total

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """Labeled, unlabeled (pseudo-label, CutMix) and feature-alignment terms: (total, terms, prediction)."""
        terms: dict[str, Tensor] = {}
        pred = None
        if "labeled" in batch:
            labeled = batch["labeled"]
            if self.perturb_labeled and self.perturbation is not None:
                labeled = {**labeled, "image": self.perturbation(labeled["image"])}
            lab_terms, pred = self.labeled_terms(labeled)
            terms.update(lab_terms)
            terms["labeled"] = self.labeled_total(lab_terms)
        if "unlabeled" in batch:
            terms.update(self.unlabeled_terms(batch["unlabeled"]))
        parts = [k for k in ("labeled", "unlabeled", "feature") if k in terms]
        if not parts:
            raise ValueError("StudentTask: the batch has neither 'labeled' nor 'unlabeled' data")
        total = sum(self.weights[k] * terms[k] for k in parts) / len(parts)
        return total, terms, pred
