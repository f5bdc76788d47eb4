"""Perturbations (registered by the built-in plugin)."""

BUILTIN_PERTURBATIONS: dict[str, type] = {}
