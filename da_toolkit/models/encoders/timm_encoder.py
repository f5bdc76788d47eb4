"""CNN encoders from timm (``features_only``): any backbone by name, and ConvNeXt.

They give a four-level pyramid ``(B, C_i, H/r_i, W/r_i)`` (typically ``r = 4, 8, 16, 32``) that
:class:`~da_toolkit.models.decoders.dpt.DPTDecoder` consumes with identity resizes. Nothing is
ever downloaded: ``weights`` is a local timm checkpoint (``.safetensors``, or ``.pth``/``.bin``
loaded by timm with ``weights_only=True``); without it the backbone is randomly initialised.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from da_toolkit.models.encoders.base import Encoder, EncoderOutput

__all__ = ["ConvNeXtEncoder", "TimmEncoder"]


class TimmEncoder(Encoder):
    """Any timm backbone with ``features_only`` as a four-level pyramid encoder.

    ``forward(x: (B,3,H,W) ImageNet-normalised) -> EncoderOutput(features, None)``.

    Args:
        name: timm model name (e.g. ``"resnet50"``, ``"convnext_tiny"``).
        out_indices: which feature levels to return (four of them for DPT).
        weights: optional local checkpoint of the timm model (never downloads); not recorded
            in ``init_args`` (a saved model carries the tensors in its state dict).
    """

    transient_init_args = frozenset({"weights"})

    def __init__(
        self,
        name: str = "resnet50",
        out_indices: Sequence[int] = (1, 2, 3, 4),
        weights: str | None = None,
    ) -> None:
        super().__init__()
        import timm

        if weights is not None and not os.path.isfile(weights):
            raise FileNotFoundError(f"{type(self).__name__}: weights file not found: {weights}")
        source: dict[str, object] = {"pretrained": False}
        if weights is not None:
            source = {"pretrained": True, "pretrained_cfg_overlay": {"file": os.fspath(weights)}}
        try:
            self.body = timm.create_model(name, features_only=True, out_indices=tuple(out_indices), **source)
        except RuntimeError as exc:
            raise ValueError(f"{type(self).__name__}: cannot build timm model {name!r}: {exc}") from exc
        self.name = name
        self.out_channels = list(self.body.feature_info.channels())
        self.reductions = list(self.body.feature_info.reduction())
        self.patch_size = None

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """``x`` (B,3,H,W) ImageNet-normalised -> the timm backbone's levels (no class tokens)."""
        self.check_input(x)
        return EncoderOutput(list(self.body(x)), None)


class ConvNeXtEncoder(TimmEncoder):
    """ConvNeXt pyramid (strides 4, 8, 16, 32) from timm.

    Args:
        variant: ``atto``, ``femto``, ``pico``, ``nano``, ``tiny``, ``small``, ``base``, ``large``...
            (timm's ``convnext_<variant>``).
        weights: optional local timm checkpoint.
    """

    def __init__(self, variant: str = "tiny", weights: str | None = None) -> None:
        super().__init__(name=f"convnext_{variant}", out_indices=(0, 1, 2, 3), weights=weights)
