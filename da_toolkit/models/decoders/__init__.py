"""Decoders (registered by the built-in plugin)."""

BUILTIN_DECODERS: dict[str, type] = {}
