"""Metrics (registered by the built-in plugin)."""

BUILTIN_METRICS: dict[str, type] = {}
