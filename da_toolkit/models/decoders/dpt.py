"""DPT decoder of Depth Anything (SPEC section 1), for ViT token maps and CNN pyramids.

Stages: per level a 1x1 projection to ``out_channels[i]`` and a resize (ViT: ConvTranspose k4 s4,
ConvTranspose k2 s2, identity, Conv3x3 s2; CNN pyramids: identity), a bias-free 3x3 conv to
``features`` channels, four fusion blocks from coarsest to finest, then the head
``conv3x3 -> features/2``, bilinear upsampling to the input size, ``conv3x3 -> 32``, ReLU,
``conv1x1 -> 1`` and the output activation:

- ``max_depth=None``: ReLU, output = relative disparity (affine-invariant, bigger = nearer);
- ``max_depth=m``: ``Sigmoid * m``, output = metric depth in metres.

Parameter names follow the official release (``projects``, ``resize_layers``,
``readout_projects``, ``scratch.layer{1-4}_rn``, ``scratch.refinenet{1-4}``,
``scratch.output_conv1``, ``scratch.output_conv2.{0,2}``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.decoders.blocks import FusionBlock
from da_toolkit.models.encoders.base import Encoder, EncoderOutput

__all__ = ["DPTDecoder", "VIT_RESIZE_FACTORS"]

#: Resize factors of the four levels for ViT token maps (all at the patch stride).
VIT_RESIZE_FACTORS: tuple[float, float, float, float] = (4, 2, 1, 0.5)
_HEAD_HIDDEN = 32


def init_positive_head(conv: nn.Conv2d) -> None:
    """Initialise the final 1x1 conv of a relative (ReLU) head so that no fresh model starts dead.

    Its input comes out of a ReLU (``>= 0``). PyTorch's default init gives a negative output at
    every pixel for many seeds (then the final ReLU outputs 0 and passes no gradient: issue 14).
    Here the weights keep the magnitudes of the default init but are made non-negative and the
    bias is set to the top of the default bias range, ``1/sqrt(fan_in)``: every pre-activation is
    then ``>= bias > 0`` for any input. Consumes no random numbers; loaded weights overwrite it,
    so released models are bit-identical.
    """
    with torch.no_grad():
        conv.weight.abs_()
        if conv.bias is not None:
            conv.bias.fill_(conv.weight[0].numel() ** -0.5)


def _resize_layer(channels: int, factor: float) -> nn.Module:
    if factor > 1:
        k = int(factor)
        if k != factor:
            raise ValueError(f"upsampling resize factor must be an integer, got {factor}")
        return nn.ConvTranspose2d(channels, channels, kernel_size=k, stride=k)
    if factor == 1:
        return nn.Identity()
    stride = round(1 / factor)
    if stride * factor != 1:
        raise ValueError(f"downsampling resize factor must be 1/integer, got {factor}")
    return nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1)


class DPTDecoder(Decoder):
    """DPT decoder: ``forward(enc: EncoderOutput, size=(H, W)) -> (B,H,W)`` disparity or metres.

    Args:
        features: channels of the fusion path (S 64, B 128, L 256, G 384).
        out_channels: channels after the per-level projection (S ``[48,96,192,384]``, ...).
        use_bn: batch norm inside the residual conv units.
        use_clstoken: class-token readout (concat token + class token, Linear, GELU); needs an
            encoder returning class tokens.
        max_depth: ``None`` -> ReLU head (relative disparity); a float -> ``Sigmoid * max_depth``
            (metres).
        in_channels: channels of the encoder levels; ``None`` = taken from the encoder when the
            decoder is attached to it (``DepthModel`` does that).
        resize_factors: per-level resize; ``None`` = chosen from the encoder when attached: ViT
            token maps (all levels at one stride) get ``(4, 2, 1, 0.5)``, pyramids ``(1,1,1,1)``.
    """

    def __init__(
        self,
        features: int = 64,
        out_channels: Sequence[int] = (48, 96, 192, 384),
        use_bn: bool = False,
        use_clstoken: bool = False,
        max_depth: float | None = None,
        in_channels: Sequence[int] | None = None,
        resize_factors: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"DPTDecoder: out_channels must have 4 levels, got {list(out_channels)}")
        if max_depth is not None and max_depth <= 0:
            raise ValueError(f"DPTDecoder: max_depth must be positive (metres) or None, got {max_depth}")
        self.features = features
        self.out_channels = list(out_channels)
        self.use_bn = use_bn
        self.use_clstoken = use_clstoken
        self.max_depth = None if max_depth is None else float(max_depth)
        self.in_channels: list[int] | None = None
        self.resize_factors: list[float] | None = None
        if in_channels is not None:
            self._build(in_channels, resize_factors if resize_factors is not None else VIT_RESIZE_FACTORS)
        elif resize_factors is not None:
            self.resize_factors = list(resize_factors)

    def attach(self, encoder: Encoder) -> None:
        """Build the layers for ``encoder`` (if not built yet) and check that they fit it."""
        if self.in_channels is None:
            factors = self.resize_factors
            if factors is None:
                single_stride = len(set(encoder.reductions)) == 1
                factors = list(VIT_RESIZE_FACTORS) if single_stride else [1.0] * len(encoder.reductions)
            self._build(encoder.out_channels, factors)
        if list(encoder.out_channels) != self.in_channels:
            raise ValueError(
                f"DPTDecoder was built for encoder channels {self.in_channels}, "
                f"the encoder gives {list(encoder.out_channels)}"
            )

    def _build(self, in_channels: Sequence[int], resize_factors: Sequence[float]) -> None:
        if len(in_channels) != 4 or len(resize_factors) != 4:
            raise ValueError(
                f"DPTDecoder needs 4 encoder levels, got in_channels {list(in_channels)}, "
                f"resize_factors {list(resize_factors)}"
            )
        self.in_channels = list(in_channels)
        self.resize_factors = [float(f) for f in resize_factors]
        oc, f = self.out_channels, self.features
        self.projects = nn.ModuleList(nn.Conv2d(c, o, kernel_size=1) for c, o in zip(in_channels, oc))
        self.resize_layers = nn.ModuleList(_resize_layer(o, r) for o, r in zip(oc, resize_factors))
        if self.use_clstoken:
            self.readout_projects = nn.ModuleList(
                nn.Sequential(nn.Linear(2 * c, c), nn.GELU()) for c in in_channels
            )
        scratch = nn.Module()
        for i, o in enumerate(oc, start=1):
            setattr(scratch, f"layer{i}_rn", nn.Conv2d(o, f, kernel_size=3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(scratch, f"refinenet{i}", FusionBlock(f, self.use_bn))
        scratch.output_conv1 = nn.Conv2d(f, f // 2, kernel_size=3, padding=1)
        scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(f // 2, _HEAD_HIDDEN, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(_HEAD_HIDDEN, 1, kernel_size=1),
        )
        if self.max_depth is None:
            init_positive_head(scratch.output_conv2[2])
        self.scratch = scratch

    def _readout(self, i: int, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens, cls[:, None].expand(-1, tokens.shape[1], -1)], dim=-1)
        tokens = self.readout_projects[i](tokens)
        return tokens.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, enc: EncoderOutput, size: tuple[int, int]) -> torch.Tensor:
        """Decode encoder features into ``(B, H, W)`` with ``(H, W) = size`` (the input size)."""
        if self.in_channels is None:
            raise RuntimeError("DPTDecoder has no layers yet: pass in_channels or attach it to an encoder")
        feats = list(enc.features)
        if len(feats) != 4:
            raise ValueError(f"DPTDecoder expects 4 feature levels, got {len(feats)}")
        if self.use_clstoken:
            if enc.cls_tokens is None:
                raise ValueError("DPTDecoder(use_clstoken=True) needs an encoder returning class tokens")
            feats = [self._readout(i, x, c) for i, (x, c) in enumerate(zip(feats, enc.cls_tokens))]
        s = self.scratch
        layers = [
            rn(resize(proj(x)))
            for x, proj, resize, rn in zip(
                feats, self.projects, self.resize_layers, (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn)
            )
        ]
        path = s.refinenet4(layers[3], size=layers[2].shape[-2:])
        path = s.refinenet3(path, layers[2], size=layers[1].shape[-2:])
        path = s.refinenet2(path, layers[1], size=layers[0].shape[-2:])
        path = s.refinenet1(path, layers[0])
        out = s.output_conv1(path)
        # size is passed through untouched (no int()), so traced/exported graphs keep it symbolic
        out = F.interpolate(out, size=(size[0], size[1]), mode="bilinear", align_corners=True)
        out = s.output_conv2(out)[:, 0]
        if self.max_depth is None:
            return F.relu(out)
        return torch.sigmoid(out) * self.max_depth
