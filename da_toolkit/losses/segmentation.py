"""Auxiliary semantic segmentation: a light head over encoder features and its loss (SPEC 3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from da_toolkit.losses.masked import mean_over_samples


class SegmentationHead(nn.Module):
    """Light segmentation decoder: encoder features -> class logits at the image size.

    Each level ``features[i]`` ``(B, in_channels[i], h_i, w_i)`` is projected by a 1x1 conv to
    ``hidden`` channels and resized bilinearly to the size of the first level; the sum goes
    through conv3x3-BatchNorm-ReLU and a 1x1 conv to ``num_classes`` logits, which are upsampled
    bilinearly (``align_corners=False``) to ``size``.

    Args:
        in_channels: channels of each feature level (an int for a single level).
        num_classes: number of classes.
        hidden: width of the head.
    """

    def __init__(self, in_channels: int | Sequence[int], num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if not channels or any(c < 1 for c in channels):
            raise ValueError(f"SegmentationHead: in_channels must be positive ints, got {in_channels}")
        if num_classes < 1:
            raise ValueError(f"SegmentationHead: num_classes must be >= 1, got {num_classes}")
        self.in_channels = channels
        self.num_classes = int(num_classes)
        self.projections = nn.ModuleList(nn.Conv2d(c, hidden, kernel_size=1) for c in channels)
        self.fuse = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(hidden, num_classes, kernel_size=1)

    def forward(self, features: Tensor | Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """Logits ``(B, num_classes, H, W)`` with ``(H, W) = size``."""
        levels = [features] if isinstance(features, Tensor) else list(features)
        if len(levels) != len(self.projections):
            raise ValueError(
                f"SegmentationHead: expected {len(self.projections)} feature levels, got {len(levels)}"
            )
        target_hw = levels[0].shape[-2:]
        fused: Tensor | None = None
        for i, (proj, feat) in enumerate(zip(self.projections, levels, strict=True)):
            if feat.dim() != 4 or feat.shape[1] != self.in_channels[i]:
                raise ValueError(
                    f"SegmentationHead: level {i} must be (B,{self.in_channels[i]},h,w), got {tuple(feat.shape)}"
                )
            x = proj(feat)
            if x.shape[-2:] != target_hw:
                x = F.interpolate(x, size=target_hw, mode="bilinear", align_corners=False)
            fused = x if fused is None else fused + x
        assert fused is not None
        logits = self.classifier(self.fuse(fused))
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


class SegmentationLoss(nn.Module):
    """Cross-entropy of segmentation logits against labels, ignoring ``ignore_index``.

    Inputs: ``logits`` ``(B,K,h,w)`` (resized bilinearly to the label size if it differs) and
    ``target`` int64 ``(B,H,W)`` class indices (``ignore_index`` = unlabeled). The cross-entropy
    is averaged per sample over its labeled pixels, then over the samples with any labeled pixel;
    with none, a zero that still backpropagates.

    Args:
        ignore_index: label value to ignore (255 in the sample contract).
        label_smoothing: label smoothing of the cross-entropy.
    """

    def __init__(self, ignore_index: int = 255, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar loss (see the class docstring)."""
        if logits.dim() != 4 or target.dim() != 3 or logits.shape[0] != target.shape[0]:
            raise ValueError(
                "SegmentationLoss: expected logits (B,K,h,w) and target (B,H,W), got "
                f"{tuple(logits.shape)} and {tuple(target.shape)}"
            )
        if target.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
            raise ValueError(f"SegmentationLoss: target must hold integer class indices, got {target.dtype}")
        target = target.long()
        if logits.shape[-2:] != target.shape[-2:]:
            logits = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
        valid = target != self.ignore_index
        bad = valid & ((target < 0) | (target >= logits.shape[1]))
        if bool(bad.any()):
            raise ValueError(
                f"SegmentationLoss: labels must be in [0, {logits.shape[1]}) or {self.ignore_index}, "
                f"got values {sorted(set(target[bad].tolist()))[:5]}"
            )
        per_pixel = F.cross_entropy(
            logits,
            target,
            ignore_index=self.ignore_index,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        count = valid.flatten(1).sum(dim=1)
        per_sample = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).flatten(1).sum(dim=1)
        per_sample = per_sample / count.clamp_min(1).to(per_pixel.dtype)
        return mean_over_samples(per_sample, count > 0)
