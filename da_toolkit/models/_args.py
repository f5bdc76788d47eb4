"""Recording of constructor arguments, so models can be described as data (``ModelConfig``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["record_init_args"]


def record_init_args(module: nn.Module, args: Mapping[str, Any]) -> None:
    """Store ``module``'s constructor arguments (tuples as lists, JSON-friendly) as ``init_args``."""
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in args.items() if k not in ("self", "__class__")}
    object.__setattr__(module, "init_args", clean)
