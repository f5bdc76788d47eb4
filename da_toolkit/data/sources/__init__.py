"""Data sources (registered by the built-in plugin)."""

BUILTIN_DATASOURCES: dict[str, type] = {}
