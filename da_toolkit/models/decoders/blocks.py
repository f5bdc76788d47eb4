"""Building blocks of the DPT decoder (residual conv unit, fusion block).

Parameter names follow the official Depth Anything release (``conv1``, ``conv2``, ``bn1``,
``bn2``, ``resConfUnit1``, ``resConfUnit2``, ``out_conv``) so checkpoints map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FusionBlock", "ResidualConvUnit"]


class ResidualConvUnit(nn.Module):
    """Pre-activation residual unit: ``x + conv2(relu(conv1(relu(x))))`` (optional batch norm).

    Shapes: ``(B,C,h,w) -> (B,C,h,w)``.
    """

    def __init__(self, features: int, use_bn: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1, bias=True)
        self.bn1: nn.Module = nn.BatchNorm2d(features) if use_bn else nn.Identity()
        self.bn2: nn.Module = nn.BatchNorm2d(features) if use_bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,C,h,w) -> (B,C,h,w): residual of two ReLU-conv(-BN) steps."""
        out = self.bn1(self.conv1(F.relu(x)))
        out = self.bn2(self.conv2(F.relu(out)))
        return out + x


class FusionBlock(nn.Module):
    """DPT fusion: ``x (+ rcu1(skip))`` -> rcu2 -> bilinear resize (align_corners) -> 1x1 conv.

    ``forward(x (B,C,h,w), skip (B,C,h,w) | None, size (h',w') | None) -> (B,C,h',w')``; without
    ``size`` the map is upsampled by 2.
    """

    def __init__(self, features: int, use_bn: bool = False) -> None:
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, bias=True)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Fuse ``x`` (B,C,h,w) with ``skip`` and resize to ``size`` (default 2x): see the class docstring."""
        if skip is not None:
            if skip.shape[-2:] != x.shape[-2:]:  # CNN pyramids with odd sizes
                skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=True)
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)
