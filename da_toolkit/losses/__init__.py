"""Losses (registered by the built-in plugin)."""

BUILTIN_LOSSES: dict[str, type] = {}
