"""Dataset wrapper that applies a transform and handles unreadable samples (skip or strict)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset, get_worker_info

from da_toolkit.data.errors import SampleReadError

log = logging.getLogger("da_toolkit.data")


class StrictModeError(SampleReadError):
    """A bad sample met in strict mode."""


class SkipCounter:
    """Count of skipped samples shared by a process and its data-loader workers.

    The counts live in a small shared-memory int64 tensor with one slot per process (slot 0 for
    the process that built it, slot ``k + 1`` for data-loader worker ``k``), so every worker
    writes only its own slot (no lost updates, no lock) and :attr:`total` read anywhere - the
    main process included - is the running count over all workers. Shared memory survives both
    ``fork`` and ``spawn`` workers (torch passes it by file descriptor) and persists across
    epochs when workers are re-created. Workers beyond ``slots - 1`` share slots (counts may then
    race, but stay approximately right).

    Args:
        slots: number of slots (processes counted exactly).
    """

    def __init__(self, slots: int = 65) -> None:
        if slots < 1:
            raise ValueError(f"SkipCounter.slots={slots}: expected >= 1")
        self.counts = torch.zeros(slots, dtype=torch.int64).share_memory_()

    def add(self, n: int = 1) -> int:
        """Count ``n`` more skipped samples for this process; returns the new total."""
        info = get_worker_info()
        slot = 0 if info is None else (info.id + 1) % self.counts.numel()
        self.counts[slot] += n
        return self.total

    @property
    def total(self) -> int:
        """Skipped samples over the building process and all its workers."""
        return int(self.counts.sum())


class SafeDataset(Dataset):
    """``transform(dataset[i])``, with bad samples skipped (default) or raised (``strict``).

    A :class:`SampleReadError` (unreadable/corrupt file, mismatched rgb/depth sizes, ...) is
    logged as a warning on the ``da_toolkit.data`` logger (printed to stderr unless logging is
    configured otherwise) with the file and the running count of skipped samples of this stream
    (summed over data-loader workers, see :class:`SkipCounter`), and the next index is tried
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
        self.counter = SkipCounter()

    @property
    def skipped(self) -> int:
        """Running count of skipped samples (all workers of this process together)."""
        return self.counter.total

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
                total = self.counter.add()
                last = exc
                log.warning(
                    "%s: skipping bad sample %d: %s (%d skipped so far in this stream)",
                    self.stream, j, exc, total,
                )
        raise RuntimeError(
            f"{self.stream}: {self.max_skips + 1} bad samples in a row from index {index}; last: {last}"
        )
