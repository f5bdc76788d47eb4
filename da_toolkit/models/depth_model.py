"""``DepthModel``: encoder + decoder, a pure ``nn.Module`` (no Lightning, I/O or device logic)."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import torch
from torch import nn

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.preprocess import DEFAULT_MAX_PIXELS

__all__ = ["DepthModel"]


class DepthModel(nn.Module):
    """Depth Anything network: ``Encoder -> Decoder -> head activation``.

    ``forward(x)`` with ``x`` ``(B,3,H,W)`` ImageNet-normalised float (sides multiples of the
    encoder's patch size) returns ``(B,H,W)``: relative disparity (``output_kind ==
    "disparity"``, bigger = nearer, unknown scale and shift) or metric depth in metres
    (``output_kind == "metric"``). ``forward(x, return_features=True)`` also returns the
    :class:`EncoderOutput` (for feature alignment).

    Args:
        encoder: any :class:`Encoder`.
        decoder: a :class:`Decoder` (``forward(enc, size) -> (B,H,W)``); its
            ``attach(encoder)`` is called to size it to the encoder (``DPTDecoder`` builds its
            layers from the encoder's channels and strides there).
    """

    def __init__(self, encoder: Encoder, decoder: Decoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        attach = getattr(decoder, "attach", None)
        if callable(attach):
            attach(encoder)

    @property
    def output_kind(self) -> str:
        """``"disparity"`` (relative) or ``"metric"`` (metres)."""
        return str(getattr(self.decoder, "output_kind", "disparity"))

    @property
    def max_depth(self) -> float | None:
        """Upper bound of the metric head in metres, ``None`` for relative models."""
        return getattr(self.decoder, "max_depth", None)

    @property
    def patch_size(self) -> int | None:
        """Input sides must be multiples of this (``None``: any size)."""
        return self.encoder.patch_size

    @overload
    def forward(self, x: torch.Tensor, return_features: Literal[False] = ...) -> torch.Tensor: ...

    @overload
    def forward(self, x: torch.Tensor, return_features: Literal[True]) -> tuple[torch.Tensor, EncoderOutput]: ...

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, EncoderOutput]:
        enc = self.encoder(x)
        depth = self.decoder(enc, (x.shape[-2], x.shape[-1]))
        if return_features:
            return depth, enc
        return depth

    @torch.no_grad()
    def infer_image(
        self, rgb: np.ndarray, input_size: int = 518, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> np.ndarray:
        """Official single-image inference (SPEC 2).

        Args:
            rgb: uint8 numpy ``(H,W,3)`` RGB.
            input_size: lower bound of the network input's shorter side (sides become
                multiples of ``input_multiple``; upsampling follows ``upsample_align_corners``).
            max_pixels: limit on the network input's pixels (default 50 M); an image whose
                official network input would exceed it (e.g. 10000x10 -> 518x518000) raises
                ``ValueError`` naming both sizes and the limit. ``None`` disables the guard.

        Returns:
            float32 numpy ``(H,W)`` at the original size: relative disparity or metres (see
            ``output_kind``). Runs on the model's device and dtype in its current mode (models
            from ``load_model`` are in eval mode).
        """
        from da_toolkit.models.inference_core import predict_rgb

        return predict_rgb(self, rgb, input_size, max_pixels=max_pixels)
