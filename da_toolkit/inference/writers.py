"""Prediction writers (registered by the built-in plugin)."""

BUILTIN_WRITERS: dict[str, type] = {}
