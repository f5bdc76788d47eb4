"""Dataset wrapper that applies a transform and handles unreadable samples (skip or strict)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from da_toolkit.data.errors import SampleReadError

log = logging.getLogger("da_toolkit.data")


class StrictModeError(SampleReadError):
    """A bad sample met in strict mode."""


class SafeDataset(Dataset):
    """``transform(dataset[i])``, with bad samples skipped (default) or raised (``strict``).

    A :class:`SampleReadError` (unreadable/corrupt file, mismatched rgb/depth sizes, ...) is
    logged as a warning on ``da_toolkit.data`` with the file and a running count of skipped
    samples (per process: each data-loader worker counts its own), and the next index is tried
    instead (up to ``max_skips`` in a row). In strict mode it is re-raised naming the file.

    Args:
        dataset: map-style source (or concatenation of sources).
        transform: sample dict -> transformed item.
        strict: raise instead of skipping.
        max_skips: consecutive bad samples tolerated before giving up.
        stream: stream name used in messages (``labeled``, ``val``, ...).
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: Callable[[dict[str, Any]], dict[str, Any]],
        strict: bool = False,
        max_skips: int = 16,
        stream: str = "data",
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.strict = strict
        self.max_skips = max_skips
        self.stream = stream
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        last: SampleReadError | None = None
        for attempt in range(self.max_skips + 1):
            j = (index + attempt) % n
            try:
                return self.transform(self.dataset[j])
            except SampleReadError as exc:
                if self.strict:
                    raise StrictModeError(exc.path, f"{exc.reason} (strict mode; set strict=False to skip bad samples)") from exc
                self.skipped += 1
                last = exc
                log.warning(
                    "%s: skipping bad sample %d: %s (%d skipped so far in this process)",
                    self.stream, j, exc, self.skipped,
                )
        raise RuntimeError(
            f"{self.stream}: {self.max_skips + 1} bad samples in a row from index {index}; last: {last}"
        )
