"""Semantic pretraining of an encoder without depth: a miniature stand-in for DINOv2.

Depth Anything starts teacher and student from DINOv2 and aligns the student's features to a
frozen DINOv2 (SPEC 3). DINOv2's value is that it was trained on far more varied images than
the labeled depth data, with a semantic objective. :class:`SemanticPretrainTask` gives an encoder
that property on data a user has: dense semantic segmentation (a light head over the encoder's
feature levels, cross-entropy) on a broad mixture of domains. Its output is an encoder-only
weights file that ``encoder_weights`` / ``frozen_encoder_weights`` read.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from da_toolkit.losses.segmentation import SegmentationHead
from da_toolkit.models.encoders.base import Encoder
from da_toolkit.models.preprocess import normalize
from da_toolkit.tasks.optim import OptimConfig, build_optimizer, param_groups

__all__ = ["SemanticPretrainTask", "ENCODER_FILE"]

#: file name of the encoder-only weights written at the end of ``fit`` (below ``encoder_out``'s folder)
ENCODER_FILE = "encoder.safetensors"


class SemanticPretrainTask(pl.LightningModule):
    """Pretrain ``encoder`` by dense semantic segmentation (no depth is used).

    Batches follow the batch contract (``batch["labeled"]`` or the batch itself): ``image
    (B,3,H,W)`` in ``[0,1]`` and ``seg (B,H,W)`` int64 class ids; pixels with a class outside
    ``[0, num_classes)`` (e.g. ``-1`` padding) are ignored. Depth fields are ignored.

    Args:
        encoder: the encoder to pretrain (``class_path`` in recipes, e.g. ``dinov2`` with tiny
            ``init_args``); any :class:`~da_toolkit.models.encoders.base.Encoder`.
        num_classes: number of semantic classes (the synthetic world has 7: sky, floor, wall,
            ceiling, box, sphere, cylinder).
        levels: feature levels fed to the head (default: all).
        head_hidden: width of the segmentation head.
        optim: optimiser settings; ``encoder_lr`` applies to the encoder, ``decoder_lr_mult`` to
            the head.
        encoder_out: where the encoder-only safetensors file is written when ``fit`` ends
            (default: ``<trainer.default_root_dir>/encoder.safetensors``).
    """

    def __init__(
        self,
        encoder: Encoder,
        num_classes: int = 7,
        levels: list[int] | None = None,
        head_hidden: int = 64,
        optim: OptimConfig = OptimConfig(encoder_lr=1e-3, decoder_lr_mult=1.0),  # noqa: B008 - frozen dataclass
        encoder_out: str | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"SemanticPretrainTask.num_classes: expected >= 2, got {num_classes}")
        self.save_hyperparameters(ignore=["encoder"])
        if dataclasses.is_dataclass(optim):  # plain types only, so checkpoints load with weights_only=True
            self.hparams["optim"] = dataclasses.asdict(optim)
        self.encoder = encoder
        n_levels = len(encoder.out_channels)
        self.levels = list(range(n_levels)) if levels is None else [int(i) % n_levels for i in levels]
        if not self.levels:
            raise ValueError("SemanticPretrainTask.levels: expected at least one feature level")
        self.head = SegmentationHead([encoder.out_channels[i] for i in self.levels], num_classes, hidden=head_hidden)
        self.num_classes = int(num_classes)
        self.optim = optim
        self.encoder_out = encoder_out
        #: path of the encoder file written by the last ``fit`` (``None`` before)
        self.written_encoder: Path | None = None

    def forward(self, images: Tensor) -> Tensor:
        """``images (B,3,H,W)`` in ``[0,1]`` -> class logits ``(B, num_classes, H, W)``."""
        enc = self.encoder(normalize(images))
        return self.head([enc.features[i] for i in self.levels], (images.shape[-2], images.shape[-1]))

    def _loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        part = batch.get("labeled", batch)
        if "seg" not in part:
            raise KeyError("SemanticPretrainTask: the batch has no `seg` labels; use a data source that provides them")
        seg = part["seg"].long()
        target = torch.where((seg >= 0) & (seg < self.num_classes), seg, torch.full_like(seg, -100))
        logits = self(part["image"])
        if not bool((target >= 0).any()):  # nothing labeled in the batch: a zero loss keeps the graph
            return logits.float().sum() * 0.0, logits, target
        loss = F.cross_entropy(logits.float(), target, ignore_index=-100)
        return loss, logits, target

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch (logged as ``train/seg_ce`` and on the progress bar)."""
        loss, _, _ = self._loss(batch)
        self.log("train/seg_ce", loss.detach(), prog_bar=True, batch_size=int(batch.get("labeled", batch)["image"].shape[0]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Pixel accuracy and cross-entropy on validation batches."""
        loss, logits, target = self._loss(batch)
        keep = target >= 0
        acc = (logits.argmax(1)[keep] == target[keep]).float().mean() if keep.any() else torch.zeros(())
        bs = int(target.shape[0])
        self.log("val/seg_ce", loss, batch_size=bs)
        self.log("val/pixel_acc", acc, prog_bar=True, batch_size=bs)

    def configure_optimizers(self) -> dict:
        """Encoder at ``optim.encoder_lr``, head at ``encoder_lr * decoder_lr_mult``."""
        optim = self.optim if isinstance(self.optim, OptimConfig) else OptimConfig(**dict(self.optim))
        groups = param_groups(self.encoder.parameters(), self.head.parameters(), optim)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 0
        if total <= 0 or total >= 2**62 or not math.isfinite(total):
            total = 0
        return build_optimizer(groups, optim, total)

    def encoder_path(self) -> Path:
        """Where :meth:`save_encoder` writes (``encoder_out``, else next to the run)."""
        if self.encoder_out:
            return Path(self.encoder_out)
        root = self.trainer.default_root_dir if self._trainer is not None else "."
        return Path(root) / ENCODER_FILE

    def save_encoder(self, path: str | Path | None = None) -> Path:
        """Write the encoder alone (safetensors, keys ``encoder.*``), readable by
        ``encoder_weights`` / ``frozen_encoder_weights``; returns the path."""
        from da_toolkit.models.weights import save_backbone

        dest = Path(path) if path is not None else self.encoder_path()
        save_backbone(self.encoder, dest)
        self.written_encoder = dest
        return dest

    def on_fit_end(self) -> None:
        """Save the pretrained encoder (rank 0 only)."""
        if self.trainer.is_global_zero:
            self.save_encoder()

