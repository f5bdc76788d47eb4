"""Errors raised while reading samples."""

from __future__ import annotations

from pathlib import Path


class SampleReadError(ValueError):
    """A sample (or one of its files) could not be read or is inconsistent.

    ``path`` names the offending file (or the source and index when there is no file) so that
    both the skip-with-warning mode and the strict mode of the data module can report it.
    """

    def __init__(self, path: str | Path, reason: str | None = None) -> None:
        # one-argument form: the whole message (how DataLoader workers re-raise exceptions)
        self.path = str(path)
        self.reason = reason if reason is not None else ""
        super().__init__(f"{self.path}: {reason}" if reason is not None else self.path)
