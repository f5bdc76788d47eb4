"""``DepthModel``: encoder + decoder, a pure ``nn.Module`` (no Lightning, I/O or device logic)."""

from __future__ import annotations

import os
from typing import Literal, overload

import numpy as np
import torch
from torch import nn

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.init_args import RecordsInitArgs
from da_toolkit.models.licence import notify_licence
from da_toolkit.models.preprocess import DEFAULT_MAX_PIXELS
from da_toolkit.models.weights.formats import LoadedWeights
from da_toolkit.models.weights.load import load_encoder_weights, load_weights

__all__ = ["DepthModel"]


class DepthModel(RecordsInitArgs, nn.Module):
    """Depth Anything network: ``Encoder -> Decoder -> head activation``.

    ``forward(x)`` with ``x`` ``(B,3,H,W)`` ImageNet-normalised float (sides multiples of
    :attr:`input_multiple`) returns ``(B,H,W)``: relative disparity (``output_kind ==
    "disparity"``, bigger = nearer, unknown scale and shift) or metric depth in metres
    (``output_kind == "metric"``). ``forward(x, return_features=True)`` also returns the
    :class:`EncoderOutput` (for feature alignment).

    Args:
        encoder: any :class:`Encoder`.
        decoder: a :class:`Decoder` (``forward(enc, size) -> (B,H,W)``); its
            ``attach(encoder)`` is called to size it to the encoder (``DPTDecoder`` builds its
            layers from the encoder's channels and strides there).
        weights: a local full-model weights file or folder (any format of
            :mod:`da_toolkit.models.weights`), loaded strictly at construction; ``None`` keeps
            the random initialisation.
        encoder_weights: a local encoder-only file (e.g. a DINOv2 backbone), loaded into the
            encoder after ``weights``.
        upsample_align_corners: ``align_corners`` of the bilinear upsampling of predictions to
            the image size (post-processing of the release: V1 ``False``, V2 ``True``).
        licence: SPDX identifier of the licence of the weights (presets fill it in, e.g.
            ``"CC-BY-NC-4.0"``); ``None`` = unknown. Recorded in the description, so checkpoints,
            predictions and exports carry it (:mod:`da_toolkit.models.licence`); loading weights
            into a model with a restricted licence logs a one-line notice.
        origin: where the weights come from (the preset name, e.g. ``"depth-anything-v2-vitb"``).

    The description of the model as data (:func:`da_toolkit.models.description.describe_model`)
    is built from the automatically recorded ``init_args`` of the model and its parts.
    """

    def __init__(
        self,
        encoder: Encoder,
        decoder: Decoder,
        weights: str | None = None,
        encoder_weights: str | None = None,
        upsample_align_corners: bool = True,
        licence: str | None = None,
        origin: str | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.upsample_align_corners = bool(upsample_align_corners)
        self.licence = licence
        self.origin = origin
        self._weights_loaded = False
        attach = getattr(decoder, "attach", None)
        if callable(attach):
            attach(encoder)
        if weights is not None:
            self.load_weights(weights)
        if encoder_weights is not None:
            load_encoder_weights(self.encoder, encoder_weights)

    def load_weights(self, path: str | os.PathLike[str]) -> LoadedWeights:
        """Load a full-model weights file or folder (strict); sets :attr:`weights_loaded`."""
        return load_weights(self, path)

    @property
    def weights_loaded(self) -> bool:
        """True once full-model weights were loaded (constructor, :meth:`load_weights`, or any
        ``load_state_dict`` that covered every tensor of the model, e.g. Lightning restoring a
        checkpoint); False for a randomly initialised model."""
        return self._weights_loaded

    def _load_from_state_dict(
        self,
        state_dict: dict[str, torch.Tensor],
        prefix: str,
        local_metadata: dict[str, object],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        # called for this module by any (parent's) load_state_dict, before its children load
        own = self.state_dict(keep_vars=True)
        if own and all(prefix + key in state_dict for key in own):
            self._weights_loaded = True
            notify_licence(self.licence, self.origin)

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

    @property
    def input_multiple(self) -> int:
        """Input sides should be multiples of this: the patch size of a ViT, else the largest
        reduction (stride) of the encoder's levels (e.g. 32 for a CNN pyramid)."""
        if self.encoder.patch_size is not None:
            return int(self.encoder.patch_size)
        return int(max(self.encoder.reductions))

    @overload
    def forward(self, x: torch.Tensor, return_features: Literal[False] = ...) -> torch.Tensor: ...

    @overload
    def forward(self, x: torch.Tensor, return_features: Literal[True]) -> tuple[torch.Tensor, EncoderOutput]: ...

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, EncoderOutput]:
        """``x`` (B,3,H,W) ImageNet-normalised, sides multiples of ``input_multiple`` -> (B,H,W).

        With ``return_features``, also the encoder's output.
        """
        enc = self.encoder(x)
        depth = self.decoder(enc, (x.shape[-2], x.shape[-1]))
        if return_features:
            return depth, enc
        return depth

    @torch.no_grad()
    def infer_image(
        self,
        rgb: np.ndarray,
        input_size: int = 518,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        *,
        channels: Literal["RGB", "BGR"] = "RGB",
    ) -> np.ndarray:
        """Official single-image inference (SPEC 2).

        Channel order: **RGB by default** (``PIL.Image.open(...)``, ``imageio``); the official
        repository's ``infer_image`` takes BGR (``cv2.imread``), so code ported from it passes
        ``channels="BGR"`` (same output as the RGB call on the converted image).

        Args:
            rgb: uint8 numpy ``(H,W,3)``, channels in the order ``channels`` names.
            input_size: lower bound of the network input's shorter side (sides become
                multiples of ``input_multiple``; upsampling follows ``upsample_align_corners``).
            max_pixels: limit on the network input's pixels (default 50 M); an image whose
                official network input would exceed it (e.g. 10000x10 -> 518x518000) raises
                ``ValueError`` naming both sizes and the limit. ``None`` disables the guard.
            channels: ``"RGB"`` (default) or ``"BGR"`` (OpenCV's order, the official ``infer_image``).

        Returns:
            float32 numpy ``(H,W)`` at the original size: relative disparity or metres (see
            ``output_kind``). Runs on the model's device and dtype in its current mode (models
            from ``load_model`` are in eval mode).
        """
        from da_toolkit.models.inference_core import predict_rgb

        if channels not in ("RGB", "BGR"):
            raise ValueError(f"infer_image: channels must be 'RGB' or 'BGR', got {channels!r}")
        if channels == "BGR" and getattr(rgb, "ndim", 0) == 3 and rgb.shape[-1] == 3:
            rgb = np.ascontiguousarray(rgb[..., ::-1])  # other shapes: predict_rgb names the error
        return predict_rgb(self, rgb, input_size, max_pixels=max_pixels)
