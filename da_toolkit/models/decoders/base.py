"""Decoder base class (the model contract of ``docs/architecture.md``)."""

from __future__ import annotations

import torch
from torch import nn

from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.init_args import RecordsInitArgs

__all__ = ["Decoder"]


class Decoder(RecordsInitArgs, nn.Module):
    """Base of all decoders: ``forward(enc: EncoderOutput, size=(H, W)) -> (B,H,W)``.

    The output is relative disparity (``output_kind == "disparity"``) or metres
    (``"metric"``). ``attach(encoder)`` is called by ``DepthModel`` so a decoder can size itself
    to its encoder (default: nothing to do). Constructor arguments are recorded automatically
    as ``self.init_args`` (:mod:`da_toolkit.models.init_args`).
    """

    max_depth: float | None = None

    @property
    def output_kind(self) -> str:
        """``"disparity"`` (relative) or ``"metric"`` (metres)."""
        return "disparity" if self.max_depth is None else "metric"

    def attach(self, encoder: Encoder) -> None:
        """Size or check the decoder for ``encoder`` (no-op by default)."""

    def forward(self, enc: EncoderOutput, size: tuple[int, int]) -> torch.Tensor:  # pragma: no cover
        """Depth (B,H,W) at ``size`` = (H, W) from the encoder's levels (disparity or metres)."""
        raise NotImplementedError
