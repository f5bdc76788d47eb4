"""Exclusive, non-blocking file locks: one writer per pseudo-label shard, across processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO, Self

__all__ = ["HeldLock", "ShardBusyError", "try_lock"]


class ShardBusyError(RuntimeError):
    """Another live process holds the lock of this shard (one writer per shard)."""


def try_lock(path: str | os.PathLike[str], busy_message: str) -> BinaryIO:
    """Open ``path`` for appending (creating it and its folder) and take an exclusive ``flock``.

    The lock lasts while the returned handle is open; the OS drops it when the process dies.
    On Windows (no ``flock``) the handle is returned unlocked: writers must use unique names.

    Raises:
        ShardBusyError: with ``busy_message``, when another open handle holds the lock.
    """
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    handle = open(file, "ab")  # noqa: SIM115 - the caller owns the handle: closing it releases the lock
    if sys.platform == "win32":  # pragma: no cover - no flock
        return handle
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ShardBusyError(busy_message) from None
    return handle


class HeldLock:
    """A lock taken by :func:`try_lock` and held while :attr:`handle` is open (a context manager)."""

    handle: BinaryIO

    @property
    def held(self) -> bool:
        """True until :meth:`close`."""
        return not self.handle.closed

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if not self.handle.closed:
            self.handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
