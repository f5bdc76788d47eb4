"""``da-toolkit export`` (thin command module): see :mod:`da_toolkit.inference.export_command`."""

from __future__ import annotations

from da_toolkit.inference.export_command import build_parser, main

__all__ = ["build_parser", "main"]
