"""Pseudo-labels as shards: a per-rank writer and a streaming reader.

Layout under ``root`` (local folder or fsspec URL)::

    root/<shard>-000000.tar     finished shards of writer <shard> (e.g. one per rank: rank000)
    root/<shard>.index.json     its index: format, teacher_hash, settings, encoding and
                                [{"url", "nsamples", "ids"}] of the finished shards

Each sample: the relative disparity in the store's ``encoding`` (see ``docs/scale.md`` for the
measured sizes and errors):

* ``"float16z"`` (default): ``key.disp.f16z``, zlib-compressed float16 - exactly the values of
  the file-per-item store (relative error <= 2^-11 = 4.9e-4 of float32), several times smaller;
* ``"png16"``: ``key.disp.png``, 16-bit PNG with the per-image ``disp_range`` in ``key.json``
  (:func:`~da_toolkit.data.shards.codec.encode_disparity`: error <= (hi - lo) / 131068, i.e.
  7.6e-6 of the image's disparity range), for more precision at about 2.5x the bytes;

plus ``key.json`` (``id``, ``image_ref``, ``disp_range``/``disp_shape``) and, when the writer is
given it, the image itself (``key.jpg``), so that the student streams shards without touching
the original files.

Guarantees as :mod:`da_toolkit.data.pseudo_store`: one writer per shard name (``flock`` on local
roots), teacher hash and settings of every writer in ``root`` must agree
(:class:`~da_toolkit.data.pseudo_store.StoreMismatchError`), and a re-run skips
:meth:`PseudoLabelShardWriter.done_ids` - resumable at shard granularity: items of the shard
that was being written when the job died are redone, finished shards never are.
"""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.locks import try_lock
from da_toolkit.data.pseudo_store import (
    StoreMismatchError,
    _canonical,
    check_disparity,
    check_same_header,
    check_writer_identity,
)
from da_toolkit.data.shards import urls as U
from da_toolkit.data.shards.codec import (
    IMAGE_EXTS,
    decode_disparity,
    decode_disparity_f16z,
    decode_image,
    encode_disparity,
    encode_disparity_f16z,
    encode_image,
    raw_image,
    read_info,
)
from da_toolkit.data.shards.stream import ShardStream
from da_toolkit.data.shards.writer import INDEX_SUFFIX, FinalisingWriter, ShardWriter, load_index

PSEUDO_SHARD_FORMAT = "da_toolkit.pseudo_label_shards/1"
ENCODINGS: tuple[str, ...] = ("float16z", "png16")
_HEADER_KEYS = ("settings", "encoding", "teacher_hash")  # compared in this order (see pseudo_store.HEADER_KEYS)


def read_store_indexes(root: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Writer name -> index of every pseudo-label shard writer under ``root``."""
    out: dict[str, dict[str, Any]] = {}
    for url in U.glob(U.join_url(str(root), f"*{INDEX_SUFFIX}"), storage_options):
        index = load_index(url, storage_options)
        name = url.rsplit("/", 1)[-1][: -len(INDEX_SUFFIX)]
        if index is None:
            continue
        if index.get("format") != PSEUDO_SHARD_FORMAT:
            raise StoreMismatchError(f"{url}: format {index.get('format')!r}, expected {PSEUDO_SHARD_FORMAT!r}")
        out[name] = index
    return out


class PseudoLabelShardWriter(FinalisingWriter):
    """Writes one rank's pseudo-labels as tar shards (drop-in for ``PseudoLabelWriter``).

    Args:
        root: store folder or URL (``s3://bucket/pseudo``).
        shard: this writer's name, e.g. ``f"rank{global_rank:03d}"``; its shards are
            ``<shard>-NNNNNN.tar``. Two live writers must not share it.
        teacher_hash: identity of the teacher (e.g. ``checkpoint_hash(path)``).
        settings: JSON-serialisable settings of the run; compared against every writer in ``root``.
        maxcount: items per shard (the unit of resumption).
        encoding: ``"float16z"`` (default) or ``"png16"`` (see the module docstring).
        zlib_level: compression level of ``float16z`` (6: measured 159 KB / 37 ms per 1000x750
            label on one CPU core; 1: 246 KB / 19 ms) - lower it if writing limits a fast GPU.
        image_format: encoding of images passed to :meth:`write` as arrays (``jpg``/``png``/``webp``).
        quality: JPEG/WebP quality.
        storage_options: fsspec options of ``root``.

    :meth:`write` checks its arguments and hands the encoding (label compression, image
    encoding) and the tar append to one background thread, so that they overlap the caller's
    next batch; at most :attr:`max_pending` items wait. An error of that thread (a full disk)
    is raised by a later :meth:`write`, :meth:`flush` or :meth:`close`. Durability is unchanged:
    an item is durable once its shard is finalised.

    Raises:
        StoreMismatchError: ``root`` holds shards of another teacher, settings or encoding.
    """

    max_pending: int = 16

    def __init__(
        self,
        root: str | os.PathLike[str],
        shard: str,
        teacher_hash: str,
        settings: Mapping[str, Any],
        maxcount: int = 1000,
        encoding: str = "float16z",
        zlib_level: int = 6,
        image_format: str = "jpg",
        quality: int = 95,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        check_writer_identity(shard, teacher_hash)
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding {encoding!r}: expected one of {ENCODINGS}")
        self.root, self.shard = str(root), shard
        self.storage_options = dict(storage_options or {})
        self.image_format, self.quality, self.zlib_level = image_format, quality, zlib_level
        self.header = {
            "format": PSEUDO_SHARD_FORMAT,
            "teacher_hash": teacher_hash,
            "settings": _canonical(dict(settings), "settings"),
            "encoding": encoding,
        }
        self._lock_handle: Any = None
        self._lock()
        self._check_against_existing()
        self._writer = ShardWriter(self.root, shard, maxcount=maxcount, header=self.header, storage_options=self.storage_options)
        self._done = self._writer.done_ids()
        # one encoder thread: compression (zlib, PNG, JPEG release the GIL) and the tar append
        # overlap the caller's next batch; the order of samples is the order of write() calls
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pseudo-shards-{shard}")
        self._pending: deque[Future[None]] = deque()
        self._closed = False

    def _lock(self) -> None:
        if not U.is_local(self.root) or sys.platform == "win32":
            return  # object storage: shard names must be unique per writer (one per rank)
        self._lock_handle = try_lock(
            U.local_path(self.root) / f".{self.shard}.lock",
            f"pseudo-label shards {self.shard!r} in {self.root} are being written by another process; "
            "give every writer (rank) its own shard name",
        )

    def _check_against_existing(self) -> None:
        for name, index in sorted(read_store_indexes(self.root, self.storage_options).items()):
            check_same_header(index, self.header, _HEADER_KEYS, f"pseudo-label shards {self.root}: writer {name!r}",
                              f"writer {self.shard!r}")

    def done_ids(self) -> set[str]:
        """Ids in this writer's finished shards (skip them when resuming); a copy: see :meth:`is_done`."""
        return set(self._done)

    def is_done(self, item_id: str) -> bool:
        """Whether ``item_id`` was written by this writer (finished shards and the current one)."""
        return item_id in self._done

    def write(
        self,
        item_id: str,
        image_ref: Mapping[str, Any],
        disparity: np.ndarray,
        image: np.ndarray | bytes | None = None,
        image_format: str | None = None,
    ) -> None:
        """Add the relative disparity ``(H, W)`` of one item (durable once its shard is finished).

        Args:
            item_id: stable id of the item; unique within the store.
            image_ref: where the original image is (JSON-serialisable; see ``pseudo_store``).
            disparity: float ``(H, W)`` (a leading 1-axis is squeezed), relative disparity;
                non-finite values are stored as invalid.
            image: the image as uint8 ``(H, W, 3)`` (encoded as the writer's ``image_format``) or
                already encoded bytes; stored in the shard so readers need no other files.
            image_format: the format of encoded ``image`` bytes (``jpg``/``png``/``webp``: the
                member's extension); default the writer's ``image_format``.
        """
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"item_id must be a non-empty string, got {item_id!r}")
        ref = _canonical(dict(image_ref), "image_ref")
        arr = check_disparity(item_id, disparity)
        info: dict[str, Any] = {"id": item_id, "image_ref": ref, "source": "pseudo_labels"}
        raw_image: tuple[str, bytes] | None = None
        if image is not None:
            if isinstance(image, (bytes, bytearray)):
                ext = image_format or self.image_format
                if ext not in IMAGE_EXTS:
                    raise ValueError(f"image_format of {item_id!r}: {ext!r}, expected one of {IMAGE_EXTS}")
                raw_image = (ext, bytes(image))
            else:
                image = np.asarray(image)
                if image.shape[:2] != arr.shape:
                    raise ValueError(f"image of {item_id!r} is {image.shape[:2]} but its disparity is {arr.shape}")
        self._raise_failed()
        # the copy: the caller may reuse its buffer while the encoder thread works
        self._pending.append(self._encoder.submit(self._encode_and_append, item_id, info, arr.copy(), image,
                                                  raw_image))
        self._done.add(item_id)
        while len(self._pending) > self.max_pending:  # bounded memory: wait for the oldest
            self._pending.popleft().result()

    def _encode_and_append(self, item_id: str, info: dict[str, Any], arr: np.ndarray, image: Any,
                           raw_image: tuple[str, bytes] | None) -> None:
        """Encoder thread: compress the label (and image), append the sample to the open shard."""
        if self.header["encoding"] == "png16":
            png, info["disp_range"] = encode_disparity(arr)
            members: dict[str, bytes] = {"disp.png": png}
        else:
            data, info["disp_shape"] = encode_disparity_f16z(arr, self.zlib_level)
            members = {"disp.f16z": data}
        if raw_image is not None:
            members[raw_image[0]] = raw_image[1]
        elif image is not None:
            members[self.image_format] = encode_image(image, self.image_format, self.quality)
        members["json"] = json.dumps(info, sort_keys=True).encode()
        self._writer.write(item_id, members)

    def _raise_failed(self) -> None:
        """Re-raise the error of a finished encoder job (e.g. ``OSError`` of a full disk) in the caller."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def _drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def flush(self) -> None:
        """Finish the current (partial) shard now (after every item written so far)."""
        self._drain()
        self._encoder.submit(self._writer.flush).result()

    def close(self) -> None:
        """Finish the last shard and release the lock (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._drain()
            self._encoder.submit(self._writer.close).result()
        finally:
            self._encoder.shutdown(wait=True)
            self._unlock()

    def abort(self) -> None:
        """Drop the unfinished shard (its items are redone on resume) and release the lock."""
        if self._closed:
            return
        self._closed = True
        try:  # the items already handed over are appended (as if written synchronously), errors ignored
            self._encoder.shutdown(wait=True)
            self._pending.clear()
            self._writer.abort()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_handle is not None and not self._lock_handle.closed:
            self._lock_handle.close()


class PseudoLabelShards(ShardStream):
    """Stream the pseudo-label shards of a store: image + teacher disparity per sample.

    Samples: ``image`` (from the shard, else from ``image_ref``: a file path - relative ones
    against ``root`` when local - or item ``index`` of a source rebuilt from its config),
    ``depth`` = relative disparity float32 ``(H, W)``, ``depth_kind = "relative"``, ``valid``.

    Args:
        root: the store folder or URL.
        teacher_hash: if given, every writer must have used this teacher.
        **kwargs: :class:`ShardStream` options (``storage_options``, ``shuffle``, ``seed``...).

    Raises:
        StoreMismatchError: no finished shards, or writers with different teacher/settings.
    """

    name = "pseudo_labels"
    stream = "pseudo_labeled"

    def __init__(self, root: str, teacher_hash: str | None = None, **kwargs: Any) -> None:
        self.root = str(root)
        self.expected_teacher = teacher_hash
        self.header: dict[str, Any] = {}
        self._image_sources: dict[str, Any] = {}
        super().__init__(urls=self.root, **kwargs)

    def _resolve(self, urls: Any, index: str | None) -> list[tuple[str, int]]:
        indexes = read_store_indexes(self.root, self.storage_options)
        shards: list[tuple[str, int]] = []
        for name, entry in sorted(indexes.items()):
            header = {k: entry.get(k) for k in _HEADER_KEYS}
            if self.expected_teacher is not None and header["teacher_hash"] != self.expected_teacher:
                raise StoreMismatchError(
                    f"{self.root}: writer {name!r} used teacher {header['teacher_hash']}, expected {self.expected_teacher}"
                )
            if not self.header:
                self.header = header
            elif header != self.header:
                raise StoreMismatchError(
                    f"{self.root}: writer {name!r} has {json.dumps(header, sort_keys=True)} but another has "
                    f"{json.dumps(self.header, sort_keys=True)}"
                )
            shards.extend((U.join_url(self.root, str(e["url"])), int(e["nsamples"])) for e in entry["shardlist"])
        if not shards:
            raise StoreMismatchError(f"pseudo-label shards {self.root}: no finished shards (*{INDEX_SUFFIX})")
        return shards

    @property
    def teacher_hash(self) -> str:
        """The teacher hash every writer recorded."""
        return str(self.header["teacher_hash"])

    @property
    def settings(self) -> dict[str, Any]:
        """The settings every writer recorded."""
        return dict(self.header["settings"])

    def _image_from_ref(self, ref: dict[str, Any], where: str) -> np.ndarray:
        from da_toolkit.data.io import read_rgb

        if "path" in ref:
            path = str(ref["path"])
            if not os.path.isabs(path) and U.is_local(self.root):
                path = str(U.local_path(self.root) / path)
            return read_rgb(path)
        if "source" in ref and "index" in ref:
            from da_toolkit.data.sources.base import instantiate

            key = json.dumps(ref["source"], sort_keys=True)
            if key not in self._image_sources:
                try:
                    self._image_sources[key] = instantiate(ref["source"])
                except Exception as exc:  # noqa: BLE001 - name the broken reference
                    raise SampleReadError(where, f"cannot rebuild image source {ref['source']}: {exc}") from None
            return self._image_sources[key][int(ref["index"])]["image"]
        raise SampleReadError(where, f"no image member and an image_ref without 'path' or 'source'+'index': {ref}")

    def decode(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """One raw shard record -> a sample dict (image and relative disparity); ``where`` names it in errors."""
        from da_toolkit.data.sources.base import make_sample

        info = read_info(raw, where)
        if "disp.f16z" in raw and "disp_shape" in info:
            disparity, valid = decode_disparity_f16z(raw["disp.f16z"], info["disp_shape"], where)
        elif "disp.png" in raw and "disp_range" in info:
            disparity, valid = decode_disparity(raw["disp.png"], info["disp_range"], where)
        else:
            raise SampleReadError(where, "pseudo-label sample needs disp.f16z + json.disp_shape or disp.png + json.disp_range")
        data = raw_image(raw, where)
        ref = info.get("image_ref") or {}
        image = decode_image(data, where) if data is not None else self._image_from_ref(ref, where)
        return make_sample(
            image, source=self.name, item_id=str(info.get("id", raw["__key__"])), image_ref=ref,
            depth=disparity, depth_kind="relative", valid=valid, where=where,
        )
