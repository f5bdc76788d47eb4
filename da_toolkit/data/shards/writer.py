"""Atomic, resumable writing of WebDataset tar shards plus their ``wids`` index.

A :class:`ShardWriter` writes ``<prefix>-000000.tar``, ``<prefix>-000001.tar``... under ``root``
(local folder or fsspec URL). Each shard is written to a local temporary file and moved (local)
or uploaded (object storage) onto its final name only when complete, and then listed in the
writer's index ``<prefix>.index.json`` (``{"wids_version": 1, "shardlist": [{"url",
"nsamples", "ids"}], ...header}``, itself replaced atomically). A crash therefore loses at most
the shard being written: on resume the index says which shards are finished and their ids, and
numbering continues after them (an orphan finished-but-unlisted shard is overwritten).
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Mapping
from typing import Any, Self

from webdataset import TarWriter

from da_toolkit.data.shards import urls as U

INDEX_SUFFIX = ".index.json"


def index_url(root: str, prefix: str) -> str:
    """URL of the index of writer ``prefix`` under ``root``."""
    return U.join_url(root, f"{prefix}{INDEX_SUFFIX}")


def load_index(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """A writer index, or ``None`` if it does not exist."""
    if not U.exists(url, storage_options):
        return None
    try:
        index = json.loads(U.read_bytes(url, storage_options))
    except ValueError as exc:
        raise ValueError(f"{url}: invalid shard index ({exc})") from None
    if not isinstance(index, dict) or not isinstance(index.get("shardlist"), list):
        raise ValueError(f"{url}: a shard index needs a 'shardlist' list")  # noqa: TRY004 - bad file content
    return index


class FinalisingWriter:
    """A writer used as a context manager: :meth:`close` (finalise) on success, :meth:`abort`
    (drop the unfinished shard, redone on resume) when the block raises."""

    def close(self) -> None:  # pragma: no cover - abstract
        """Finalise what was written."""
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - abstract
        """Drop the unfinished part."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ShardWriter(FinalisingWriter):
    """Write samples (dicts of WebDataset members) into size-limited, atomically finalised shards.

    Args:
        root: output folder or URL (``s3://bucket/data``).
        prefix: shard name prefix (``train`` -> ``train-000000.tar``); one writer per prefix.
        maxcount: samples per shard.
        header: extra JSON fields stored in the index (checked by subclasses on resume).
        storage_options: fsspec options of ``root``.
    """

    def __init__(
        self,
        root: str,
        prefix: str,
        maxcount: int = 1000,
        header: Mapping[str, Any] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if maxcount < 1:
            raise ValueError(f"ShardWriter.maxcount={maxcount}: expected >= 1")
        if not prefix or "/" in prefix:
            raise ValueError(f"ShardWriter.prefix={prefix!r}: expected a plain name")
        self.root, self.prefix, self.maxcount = str(root), prefix, maxcount
        self.storage_options = dict(storage_options or {})
        self.index_url = index_url(self.root, prefix)
        if U.is_local(self.root):
            U.local_path(self.root).mkdir(parents=True, exist_ok=True)
        existing = load_index(self.index_url, self.storage_options)
        self.index: dict[str, Any] = existing or {"wids_version": 1, **dict(header or {}), "shardlist": []}
        self._tar: TarWriter | None = None
        self._handle: Any = None
        self._staging: Any = None
        self._tmp: Any = None
        self._ids: list[str] = []

    # ------------------------------------------------------------------ state
    @property
    def finished(self) -> list[dict[str, Any]]:
        """Index entries of the finished shards."""
        return list(self.index["shardlist"])

    def done_ids(self) -> set[str]:
        """Ids stored in finished shards."""
        return {i for entry in self.index["shardlist"] for i in entry.get("ids", [])}

    def shard_name(self, number: int) -> str:
        """File name of shard ``number``."""
        return f"{self.prefix}-{number:06d}.tar"

    # ------------------------------------------------------------------ writing
    def _open(self) -> None:
        url = U.join_url(self.root, self.shard_name(len(self.index["shardlist"])))
        self._staging = U.staging_file(url)
        self._tmp = self._staging.__enter__()
        self._handle = open(self._tmp, "wb")  # noqa: SIM115 - closed in _finish
        # an int mtime: tarfile writes a float one as an extra PAX header per member (1 KiB each,
        # and a second header every reader parses)
        self._tar = TarWriter(self._handle, encoder=False, mtime=0)
        self._url = url
        self._ids = []

    def write(self, item_id: str, members: Mapping[str, bytes]) -> None:
        """Add one sample: ``members`` maps extensions (``jpg``, ``json``...) to bytes."""
        if self._tar is None:
            self._open()
        key = f"{len(self._ids):09d}"
        assert self._tar is not None
        self._tar.write({"__key__": key, **{k: bytes(v) for k, v in members.items()}})
        self._ids.append(str(item_id))
        if len(self._ids) >= self.maxcount:
            self.flush()

    def flush(self, empty: bool = False) -> None:
        """Finalise the shard being written: close, move into place, list in the index.

        With no shard open nothing happens, unless ``empty`` (then an empty shard is written:
        the converter keeps shard numbers aligned with item ranges).
        """
        if self._tar is None:
            if not empty:
                return
            self._open()
        self._tar.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        try:
            U.put_file_atomic(self._tmp, self._url, self.storage_options)
        finally:
            self._staging.__exit__(None, None, None)
        name = self._url.rsplit("/", 1)[-1]
        self.index["shardlist"].append({"url": name, "nsamples": len(self._ids), "ids": self._ids})
        U.write_bytes_atomic(self.index_url, json.dumps(self.index).encode(), self.storage_options)
        self._tar = None
        self._ids = []

    def abort(self) -> None:
        """Drop the shard being written (it is redone by the next run)."""
        if self._tar is not None:
            try:
                self._tar.close()
            except (OSError, ValueError):
                pass
            try:
                self._handle.close()
            except OSError:
                pass
            self._staging.__exit__(None, None, None)
            self._tar = None

    def close(self) -> None:
        """Finalise the last (partial) shard."""
        self.flush()


def tar_member_names(path: str) -> list[str]:
    """Member names of a local tar file (for tests and checks)."""
    with tarfile.open(path) as tar:
        return tar.getnames()
