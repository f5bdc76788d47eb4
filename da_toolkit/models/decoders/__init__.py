"""Decoders (registered by the built-in plugin)."""

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.decoders.smp_decoder import SmpDecoder

__all__ = ["BUILTIN_DECODERS", "DPTDecoder", "Decoder", "SmpDecoder"]

BUILTIN_DECODERS: dict[str, type] = {
    "dpt": DPTDecoder,
    "smp_decoder": SmpDecoder,
}
