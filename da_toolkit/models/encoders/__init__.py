"""Encoders (registered by the built-in plugin)."""

from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.encoders.dinov2 import DINOv2Encoder
from da_toolkit.models.encoders.smp_encoder import SmpEncoder
from da_toolkit.models.encoders.timm_encoder import ConvNeXtEncoder, TimmEncoder

__all__ = [
    "BUILTIN_ENCODERS",
    "ConvNeXtEncoder",
    "DINOv2Encoder",
    "Encoder",
    "EncoderOutput",
    "SmpEncoder",
    "TimmEncoder",
]

BUILTIN_ENCODERS: dict[str, type] = {
    "dinov2": DINOv2Encoder,
    "timm": TimmEncoder,
    "convnext": ConvNeXtEncoder,
    "smp_encoder": SmpEncoder,
}
