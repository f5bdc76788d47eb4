"""A small CNN pyramid encoder for dermoscopy images (an example of the encoder contract)."""

from __future__ import annotations

import torch
from torch import nn

from da_toolkit.models.encoders.base import Encoder, EncoderOutput


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LesionCNN(Encoder):
    """Four-level CNN pyramid: ``(B,3,H,W)`` ImageNet-normalised -> levels at strides 4, 8, 16, 32.

    ``features[i]`` is ``(B, widths[i], H / 2**(i+2), W / 2**(i+2))``; no class tokens. A stem
    of two stride-2 convs reaches stride 4, each further level is one stride-2 conv followed by
    ``blocks_per_level - 1`` stride-1 convs (3x3 conv, BatchNorm, ReLU). Input sides should be
    multiples of 32 (``DepthModel.input_multiple`` is then 32).

    Constructor arguments are recorded automatically (``self.init_args``) by the ``Encoder``
    base class, so a model with this encoder can be described, saved and rebuilt.

    Args:
        widths: channels of the four levels.
        blocks_per_level: convs per level (>= 1).
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 128), blocks_per_level: int = 1) -> None:
        super().__init__()
        if len(widths) != 4 or any(int(w) <= 0 for w in widths):
            raise ValueError(f"LesionCNN: widths must be 4 positive channel counts, got {list(widths)}")
        if blocks_per_level < 1:
            raise ValueError(f"LesionCNN: blocks_per_level must be >= 1, got {blocks_per_level}")
        widths = tuple(int(w) for w in widths)
        self.stem = _conv_bn_relu(3, widths[0] // 2 or 1, 2)
        self.levels = nn.ModuleList()
        c_in = widths[0] // 2 or 1
        for c_out in widths:
            blocks = [_conv_bn_relu(c_in, c_out, 2)]
            blocks += [_conv_bn_relu(c_out, c_out, 1) for _ in range(blocks_per_level - 1)]
            self.levels.append(nn.Sequential(*blocks))
            c_in = c_out
        # the contract: what forward returns, per level
        self.out_channels = list(widths)
        self.reductions = [4, 8, 16, 32]
        self.patch_size = None

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """``x`` ``(B,3,H,W)`` -> ``EncoderOutput([4 maps (B, widths[i], H/r_i, W/r_i)], None)``."""
        self.check_input(x)
        x = self.stem(x)
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return EncoderOutput(features, None)
