"""Encoders (registered by the built-in plugin)."""

BUILTIN_ENCODERS: dict[str, type] = {}
