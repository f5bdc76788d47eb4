"""Decoders (registered by the built-in plugin)."""

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.decoders.dpt import DPTDecoder

__all__ = ["BUILTIN_DECODERS", "Decoder", "DPTDecoder"]

BUILTIN_DECODERS: dict[str, type] = {
    "dpt": DPTDecoder,
}
