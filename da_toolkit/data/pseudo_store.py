"""Pseudo-label store: sharded, atomic, resumable storage of teacher disparities.

Layout under ``root``::

    root/<shard>/shard.json          header: format, teacher_hash, settings, dtype (atomic write)
    root/<shard>/manifest.jsonl      one JSON line per finished item (append-only, fsync'd)
    root/<shard>/<hh>/<sha1>.npy     the disparity of one item, ``<sha1>`` = sha1 of its id

Each writer process (e.g. one distributed rank) owns one shard name, so ranks never touch the
same file and need no coordination. A writer holds an exclusive ``flock`` on its shard's manifest
(:class:`ShardLock`, released by the OS when the process dies) from *before* it repairs anything,
so a second writer on the same shard is refused (:class:`ShardBusyError`) without touching the
live manifest. A command takes the lock with :func:`lock_shard` before loading its model and
hands it to :class:`PseudoLabelWriter`. An item's ``.npy`` is written atomically (temp + rename)
before its manifest line is appended, so a crash can at worst leave an orphan ``.npy`` (redone on
resume) or a torn last manifest line (ignored and truncated on resume). A re-run with the same
shard skips the ids in :meth:`PseudoLabelWriter.done_ids`.

Disparities are stored as **float16 ``.npy``** by default (``dtype="float32"`` to keep full
precision): relative disparity, ``(H, W)``, at the resolution of the original image, bigger =
nearer, scale and shift unknown. Non-finite values are allowed and read back as invalid pixels.

Every shard records the teacher checkpoint hash (:func:`checkpoint_hash`) and the settings of the
run (any JSON-serialisable dict; ``da-toolkit pseudo-label`` records the input size and the
teacher's full model description, :func:`da_toolkit.models.describe.describe_model`: encoder and
decoder class paths with every constructor argument). Opening a writer whose settings, dtype or
hash differ from those of any existing shard in ``root`` raises :class:`StoreMismatchError`, one
line naming the first differing field (:func:`check_same_header`), e.g.
``settings.model.init_args.decoder.init_args.features=8 ... has ...=16``.

``image_ref`` tells the reader (:class:`da_toolkit.data.sources.pseudo.PseudoLabelSource`) where
the original image is. It is a JSON-serialisable dict, one of:

* ``{"path": "/abs/or/relative/to/root/image.jpg"}`` - an image file;
* ``{"source": {"class_path": "pkg.Cls", "init_args": {...}}, "index": i}`` - item ``i`` of a
  data source built from that config (e.g. synthetic scenes, which have no files).

Every built-in data source puts such a dict in ``sample["meta"]["image_ref"]``, so the
pseudo-label job can pass it through unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np

from da_toolkit.data.io import atomic_save_npy, atomic_write_json
from da_toolkit.data.locks import HeldLock, ShardBusyError, try_lock  # noqa: F401 - ShardBusyError is part of this module's API

STORE_FORMAT = "da_toolkit.pseudo_labels/1"
SHARD_HEADER = "shard.json"
MANIFEST = "manifest.jsonl"
_SHARD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: header fields a writer must share with every shard of its store, in the order they are compared
#: (the settings - input size and the teacher's full model description - first, so that another
#: architecture is named by its field rather than by its different weights hash)
HEADER_KEYS = ("settings", "dtype", "teacher_hash")


class StoreMismatchError(ValueError):
    """A writer or reader met shards produced by a different teacher or different settings."""


def _check_shard_name(shard: str) -> None:
    if not _SHARD_RE.match(shard):
        raise ValueError(f"shard name {shard!r}: use letters, digits, '_', '.', '-' (not starting with '.')")


class ShardLock(HeldLock):
    """Exclusive lock of one shard of a store: an ``flock`` on ``<root>/<shard>/manifest.jsonl``.

    Taking it creates the shard folder and an empty manifest if missing, and nothing else; it
    never reads or repairs the manifest. The lock lives as long as :attr:`handle` is open (the OS
    drops it when the process dies). Use :func:`lock_shard` to take it.

    Raises:
        ShardBusyError: another process (or another open writer) holds the shard.
    """

    def __init__(self, root: str | os.PathLike[str], shard: str) -> None:
        _check_shard_name(shard)
        self.dir = Path(root) / shard
        self.handle = try_lock(
            self.dir / MANIFEST,
            f"pseudo-label shard {self.dir} is being written by another process; wait for it to "
            "finish, or give every writer (rank) its own shard name",
        )



def lock_shard(root: str | os.PathLike[str], shard: str) -> ShardLock:
    """Take the exclusive lock of ``root/shard`` now (before any costly work such as loading a model).

    Pass the result to :class:`PseudoLabelWriter` (``lock=``), which then owns it.

    Raises:
        ShardBusyError: the shard is being written by another live process (one-line message).
        ValueError: ``shard`` is not a valid shard name.
    """
    return ShardLock(root, shard)


def checkpoint_hash(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """``"sha256:<hex>"`` of a checkpoint file (the identity recorded in every shard)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def item_relpath(item_id: str) -> str:
    """Relative path of an item's ``.npy`` inside its shard (sha1 of the id, 2-level fan-out)."""
    sha = hashlib.sha1(item_id.encode("utf-8")).hexdigest()
    return f"{sha[:2]}/{sha}.npy"


def _canonical(obj: Any, what: str) -> Any:
    """Round-trip through JSON so that tuples/lists and key order compare equal."""
    try:
        return json.loads(json.dumps(obj, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be JSON-serialisable: {exc}") from None


_ABSENT = object()


def first_difference(theirs: Any, ours: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first dotted key (``settings.model.init_args.decoder.init_args.features``) where two
    JSON values differ, with both values (``_ABSENT`` where a key is missing); ``None`` if equal."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(theirs) | set(ours), key=str):
            diff = first_difference(theirs.get(key, _ABSENT), ours.get(key, _ABSENT), f"{path}.{key}")
            if diff is not None:
                return diff
        return None
    if isinstance(theirs, list) and isinstance(ours, list) and len(theirs) == len(ours):
        for i, (a, b) in enumerate(zip(theirs, ours, strict=True)):
            diff = first_difference(a, b, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    return None if theirs == ours else (path, theirs, ours)


def _shown(value: Any, limit: int = 80) -> str:
    if value is _ABSENT:
        return "(not set)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_same_header(theirs: Mapping[str, Any], ours: Mapping[str, Any], keys: tuple[str, ...], where: str,
                      this: str) -> None:
    """Refuse a writer whose header differs from an existing one: one line naming the first
    differing field (the settings, i.e. the teacher's architecture, are compared first).

    Args:
        theirs: the existing header (shard ``shard.json`` / writer index).
        ours: this writer's header.
        keys: the header fields to compare, in order.
        where: the existing one, e.g. ``"pseudo-label store /s: shard 'rank000'"``.
        this: this writer, e.g. ``"shard 'rank001'"``.

    Raises:
        StoreMismatchError: ``{where} was written with FIELD=A, but this run ({this}) has FIELD=B; ...``.
    """
    for key in keys:
        diff = first_difference(theirs.get(key, _ABSENT), ours.get(key, _ABSENT), key)
        if diff is not None:
            field, a, b = diff
            raise StoreMismatchError(
                f"{where} was written with {field}={_shown(a)}, but this run ({this}) has {field}={_shown(b)}; "
                "use a new store folder or the same teacher and settings"
            )


def check_writer_identity(shard: str, teacher_hash: str) -> None:
    """A writer's shard name (letters, digits, ``_ . -``) and teacher hash (non-empty), or ``ValueError``."""
    _check_shard_name(shard)
    if not isinstance(teacher_hash, str) or not teacher_hash:
        raise ValueError("teacher_hash must be a non-empty string (e.g. checkpoint_hash(path))")


def check_disparity(item_id: str, disparity: Any) -> np.ndarray:
    """A pseudo-label's relative disparity as a float ``(H, W)`` array (a leading 1-axis squeezed).

    Raises:
        ValueError: another shape or a non-float dtype (naming the item).
    """
    arr = np.asarray(disparity)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"disparity for {item_id!r} must be a float (H, W) array, got {arr.dtype} {arr.shape}")
    return arr


def read_shard_header(shard_dir: Path) -> dict[str, Any]:
    """Read and check ``shard.json`` of one shard folder."""
    path = shard_dir / SHARD_HEADER
    try:
        header = json.loads(path.read_text())
    except FileNotFoundError:
        raise StoreMismatchError(f"{path}: missing shard header") from None
    except json.JSONDecodeError as exc:
        raise StoreMismatchError(f"{path}: invalid JSON ({exc})") from None
    if header.get("format") != STORE_FORMAT:
        raise StoreMismatchError(f"{path}: format {header.get('format')!r}, expected {STORE_FORMAT!r}")
    for key in ("teacher_hash", "settings", "dtype"):
        if key not in header:
            raise StoreMismatchError(f"{path}: missing field {key!r}")
    return header


def _parse_entry(line: bytes) -> dict[str, Any]:
    entry = json.loads(line)
    if not isinstance(entry, dict) or "id" not in entry or "file" not in entry:
        raise ValueError("an entry needs 'id' and 'file'")
    return entry


def read_manifest(shard_dir: Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Entries of a shard's manifest, in write order (the last entry wins for a repeated id).

    Only a torn tail (bytes after the last newline, left by a crash while appending) is
    tolerated: it is ignored, and with ``repair=True`` cut off the file (or completed with a
    newline if it is a whole entry). A bad complete line is an error naming the line.
    """
    path = shard_dir / MANIFEST
    if not path.exists():
        return []
    raw = path.read_bytes()
    cut = raw.rfind(b"\n") + 1
    body, tail = raw[:cut], raw[cut:]
    entries: list[dict[str, Any]] = []
    for n, line in enumerate(body.split(b"\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            entries.append(_parse_entry(line))
        except ValueError as exc:
            raise StoreMismatchError(f"{path}: line {n} is not a valid manifest entry ({exc})") from None
    fixed = body
    if tail.strip():
        try:
            entries.append(_parse_entry(tail))
            fixed = body + tail + b"\n"
        except ValueError:
            pass
    if repair and fixed != raw:
        with open(path, "r+b") as handle:
            handle.seek(0)
            handle.write(fixed)
            handle.truncate(len(fixed))
            handle.flush()
            os.fsync(handle.fileno())
    return entries


class PseudoLabelWriter:
    """Writes one shard of a pseudo-label store; safe to resume, one writer per shard.

    Args:
        root: store folder (created if missing); several shards live side by side.
        shard: this writer's shard name, e.g. ``f"rank{global_rank:03d}"`` (letters, digits,
            ``_ . -``). Two live writers must never share a shard name (a second one raises
            ``RuntimeError``: the manifest is ``flock``-ed while a writer is open).
        teacher_hash: identity of the teacher checkpoint, e.g. :func:`checkpoint_hash`.
        settings: JSON-serialisable settings of the run (input size, model, ...); compared on
            resume and against the other shards.
        dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        lock: the shard's lock taken earlier with :func:`lock_shard` (the writer then owns it and
            releases it on :meth:`close`); ``None`` takes it here.

    The lock is taken before the manifest is read or repaired, so a refused second writer never
    modifies the live manifest.

    Raises:
        StoreMismatchError: ``root`` already holds a shard with another teacher hash, other
            settings or another dtype.
        ShardBusyError: another process writes this shard (a ``RuntimeError``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        shard: str,
        teacher_hash: str,
        settings: Mapping[str, Any],
        dtype: Literal["float16", "float32"] = "float16",
        lock: ShardLock | None = None,
    ) -> None:
        check_writer_identity(shard, teacher_hash)
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype {dtype!r}: expected 'float16' or 'float32'")
        self.root = Path(root)
        self.shard = shard
        self.dir = self.root / shard
        if lock is not None and (not lock.held or lock.dir.resolve() != self.dir.resolve()):
            raise ValueError(f"lock= must be the held lock of shard {self.dir}, got one of {lock.dir}")
        self.header = {
            "format": STORE_FORMAT,
            "teacher_hash": teacher_hash,
            "settings": _canonical(dict(settings), "settings"),
            "dtype": dtype,
        }
        self._check_against_existing()  # read-only: the other shards' atomic headers
        self._lock = lock if lock is not None else ShardLock(self.root, shard)  # before any repair
        self._manifest = self._lock.handle
        try:
            if not (self.dir / SHARD_HEADER).exists():
                atomic_write_json(self.dir / SHARD_HEADER, self.header)
            self._done: dict[str, str] = {}
            for entry in read_manifest(self.dir, repair=True):
                if (self.dir / entry["file"]).is_file():
                    self._done[entry["id"]] = entry["file"]
        except BaseException:
            self._lock.close()
            raise

    def _check_against_existing(self) -> None:
        if not self.root.is_dir():
            return
        for other in sorted(p for p in self.root.iterdir() if (p / SHARD_HEADER).exists()):
            check_same_header(read_shard_header(other), self.header, HEADER_KEYS,
                              f"pseudo-label store {self.root}: shard {other.name!r}", f"shard {self.shard!r}")

    def done_ids(self) -> set[str]:
        """Ids already stored in this shard (skip them when resuming); a copy: see :meth:`is_done`."""
        return set(self._done)

    def is_done(self, item_id: str) -> bool:
        """Whether ``item_id`` is already stored in this shard (no copy of the set)."""
        return item_id in self._done

    def write(self, item_id: str, image_ref: Mapping[str, Any], disparity: np.ndarray) -> None:
        """Store the relative disparity ``(H, W)`` of one item (atomic; replaces an earlier one).

        Args:
            item_id: stable id of the item (``sample["meta"]["id"]``); unique within the store.
            image_ref: where the original image is (see the module docstring).
            disparity: float array ``(H, W)`` (a leading 1-axis is squeezed), relative disparity.
        """
        if self._manifest.closed:
            raise RuntimeError(f"PseudoLabelWriter for shard {self.shard!r} is closed")
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"item_id must be a non-empty string, got {item_id!r}")
        ref = _canonical(dict(image_ref), "image_ref")
        if not ("path" in ref or ("source" in ref and "index" in ref)):
            raise ValueError(f"image_ref for {item_id!r} needs 'path' or 'source'+'index', got keys {sorted(ref)}")
        arr = check_disparity(item_id, disparity)
        rel = item_relpath(item_id)
        atomic_save_npy(self.dir / rel, arr.astype(self.header["dtype"]))
        line = json.dumps({"id": item_id, "file": rel, "image_ref": ref, "shape": list(arr.shape)}, sort_keys=True)
        self._manifest.write(line.encode() + b"\n")
        self._manifest.flush()
        os.fsync(self._manifest.fileno())
        self._done[item_id] = rel

    def close(self) -> None:
        """Close the manifest, which is the lock's handle: releases the shard (idempotent)."""
        self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.close()
