"""Feature alignment with a frozen encoder, with a tolerance margin (Depth Anything V1, SPEC 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from da_toolkit.losses.masked import mean_over_samples, upcast


class FeatureAlignmentLoss(nn.Module):
    """``1 - mean cos(f, f')`` over the positions whose similarity is not above ``margin``.

    Inputs: ``student`` and ``frozen`` feature maps ``(B,C,h,w)`` (or equally long sequences of
    them, one per level, whose losses are averaged). ``frozen`` comes from a frozen encoder (e.g.
    DINOv2) and is detached. If the spatial sizes differ, ``frozen`` is resampled bilinearly
    (``align_corners=False``) to the student's ``(h,w)``. If the channel counts differ, this is an
    error unless ``projector=True``, in which case a learnable 1x1 convolution maps the student's
    ``student_channels`` to ``frozen_channels`` (the paper uses no projector).

    Per sample, the cosine similarity is computed at every position; positions with
    ``cos > margin`` are excluded (they are already aligned enough); the loss is
    ``1 - mean cos`` over the remaining positions, averaged over the samples that have any.
    When nothing remains, the loss is a zero that still backpropagates. Unitless scalar in
    ``[0, 2]``.

    Args:
        margin: the tolerance alpha (0.85 in the paper; 1.0 disables the exclusion).
        projector: add a 1x1 conv from ``student_channels`` to ``frozen_channels``.
        student_channels: student feature channels (required with ``projector=True``).
        frozen_channels: frozen feature channels (required with ``projector=True``).
        eps: epsilon of the cosine similarity.
    """

    def __init__(
        self,
        margin: float = 0.85,
        projector: bool = False,
        student_channels: int | None = None,
        frozen_channels: int | None = None,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if not -1.0 <= margin <= 1.0:
            raise ValueError(f"FeatureAlignmentLoss: margin must be in [-1, 1], got {margin}")
        self.margin = float(margin)
        self.eps = float(eps)
        self.projector: nn.Module | None = None
        if projector:
            if student_channels is None or frozen_channels is None:
                raise ValueError(
                    "FeatureAlignmentLoss: projector=True needs student_channels and frozen_channels, "
                    f"got {student_channels} and {frozen_channels}"
                )
            self.projector = nn.Conv2d(student_channels, frozen_channels, kernel_size=1)

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return f"margin={self.margin}"

    def per_sample(self, student: Tensor, frozen: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample ``1 - mean cos`` ``(B,)`` and whether any position was kept ``(B,)``."""
        if student.dim() != 4 or frozen.dim() != 4:
            raise ValueError(
                "FeatureAlignmentLoss: features must be (B,C,h,w), got student "
                f"{tuple(student.shape)} and frozen {tuple(frozen.shape)}"
            )
        if student.shape[0] != frozen.shape[0]:
            raise ValueError(
                f"FeatureAlignmentLoss: batch sizes differ: student {student.shape[0]}, frozen {frozen.shape[0]}"
            )
        if self.projector is not None:
            student = self.projector(student)
        if student.shape[1] != frozen.shape[1]:
            raise ValueError(
                f"FeatureAlignmentLoss: channel counts differ (student {student.shape[1]}, frozen "
                f"{frozen.shape[1]}); pass projector=True with student_channels/frozen_channels"
            )
        student, frozen = upcast(student), upcast(frozen.detach())
        if frozen.shape[-2:] != student.shape[-2:]:
            frozen = F.interpolate(frozen, size=student.shape[-2:], mode="bilinear", align_corners=False)
        cos = F.cosine_similarity(student, frozen.to(student.dtype), dim=1, eps=self.eps)
        keep = cos <= self.margin
        count = keep.flatten(1).sum(dim=1)
        total = torch.where(keep, 1.0 - cos, torch.zeros_like(cos)).flatten(1).sum(dim=1)
        return total / count.clamp_min(1).to(cos.dtype), count > 0

    def forward(self, student: Tensor | Sequence[Tensor], frozen: Tensor | Sequence[Tensor]) -> Tensor:
        """Scalar loss (see the class docstring)."""
        if isinstance(student, Tensor) != isinstance(frozen, Tensor):
            raise ValueError("FeatureAlignmentLoss: pass two tensors or two sequences of tensors")
        pairs = [(student, frozen)] if isinstance(student, Tensor) else list(zip(student, frozen, strict=False))
        if not isinstance(student, Tensor) and len(student) != len(frozen):
            raise ValueError(
                f"FeatureAlignmentLoss: {len(student)} student levels but {len(frozen)} frozen levels"
            )
        if not pairs:
            raise ValueError("FeatureAlignmentLoss: no feature levels given")
        losses = []
        for s, f in pairs:
            per_sample, has = self.per_sample(s, f)
            losses.append(mean_over_samples(per_sample, has))
        return torch.stack(losses).mean()
