"""Encoder base class and output type (the model contract of ``docs/architecture.md``)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from da_toolkit.models.init_args import RecordsInitArgs

__all__ = ["Encoder", "EncoderOutput"]


class EncoderOutput(NamedTuple):
    """What every encoder returns.

    Attributes:
        features: multi-level feature maps; ``features[i]`` is
            ``(B, out_channels[i], H / reductions[i], W / reductions[i])``.
        cls_tokens: per level ``(B, out_channels[i])`` class tokens (ViTs), or ``None`` (CNNs).
    """

    features: list[torch.Tensor]
    cls_tokens: list[torch.Tensor] | None


class Encoder(RecordsInitArgs, nn.Module):
    """Base of all encoders.

    ``forward(x: (B,3,H,W) ImageNet-normalised float) -> EncoderOutput``. Subclasses set:

    - ``out_channels``: channels of each returned level;
    - ``reductions``: stride of each level relative to the input (14 for every level of a
      patch-14 ViT, e.g. ``[4, 8, 16, 32]`` for a CNN pyramid);
    - ``patch_size``: input sides must be multiples of it (``None`` for CNNs).

    Constructor arguments are recorded automatically as ``self.init_args`` (JSON-friendly), so
    a model holding the encoder can be described and rebuilt (:mod:`da_toolkit.models.init_args`).
    """

    out_channels: list[int]
    reductions: list[int]
    patch_size: int | None = None

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is ``(B,3,H,W)`` with sides multiples of ``patch_size``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (B,3,H,W), got {tuple(x.shape)}"
            )
        p = self.patch_size
        if p is not None and (x.shape[-2] % p or x.shape[-1] % p):
            raise ValueError(
                f"{type(self).__name__}: input height and width must be multiples of the patch "
                f"size {p}, got {x.shape[-2]}x{x.shape[-1]} (use preprocess.target_size)"
            )

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # pragma: no cover - abstract
        """``x`` (B,3,H,W) ImageNet-normalised -> the levels declared by ``out_channels`` / ``reductions``."""
        raise NotImplementedError
