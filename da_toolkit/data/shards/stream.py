"""``ShardStream``: an iterable dataset over WebDataset tar shards, split across ranks and workers.

Per epoch the shard order is shuffled (same permutation on every rank: seed + epoch), the
``N`` samples of the concatenated shards are cut into ``world_size`` contiguous ranges of
``N // world_size`` samples (at most ``world_size - 1`` samples are left out of an epoch; which
ones changes with the shuffled order), and every rank's range into contiguous per-worker ranges
of whole batches. So every sample is read by exactly one worker of one rank per epoch, each
worker reads one contiguous stretch of at most a few shards, and all ranks yield the same
number of samples (what DDP needs). Inside a worker the samples pass a shuffle buffer whose
order is a pure function of ``(seed, epoch, rank, worker)``, which is what makes mid-epoch
resume exact: :class:`~da_toolkit.data.shards.loader.ShardLoader` records how many entries
each worker has delivered and a resumed stream starts after them.

Bad samples (a corrupt member, a missing file of a sample, a truncated shard) are
:class:`~da_toolkit.data.errors.SampleReadError` s: logged with the shard and key and counted
(:attr:`skipped`, shared across workers like :class:`~da_toolkit.data.robust.SafeDataset`);
the slot is filled with the next good sample of the same worker (as ``SafeDataset`` takes the
next index), so the number of samples per rank stays fixed. ``strict=True`` raises instead.

Shard sample counts come from a WebDataset ``wids`` index file (``{"shardlist": [{"url",
"nsamples"}, ...]}``, written by the converter and the pseudo-label writer) or, without one, by
reading every shard once at construction.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import base_plus_ext

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.robust import SkipCounter, StrictModeError
from da_toolkit.data.shards import urls as U

log = logging.getLogger("da_toolkit.data")

STATE_KEY = "_shard_state"  # per-sample tag (worker id, entries delivered) read by ShardLoader


def buffer_order(n: int, buffer: int, rng: np.random.Generator) -> np.ndarray:
    """Output order of a shuffle buffer of size ``buffer`` fed with ``0..n-1`` (int64 ``(n,)``).

    Position ``i`` is never output before more than ``i + buffer`` inputs have been read, so
    a reader following this order holds at most about ``buffer`` samples.
    """
    if buffer <= 1 or n <= 1:
        return np.arange(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    buf: list[int] = []
    picks = rng.integers(0, 1 << 62, size=n)
    k = 0
    for i in range(n):
        buf.append(i)
        if len(buf) >= buffer:
            j = int(picks[k] % len(buf))
            out[k] = buf[j]
            buf[j] = buf[-1]
            buf.pop()
            k += 1
    rest = np.asarray(buf, dtype=np.int64)
    out[k:] = rest[rng.permutation(len(rest))]
    return out


def read_index(url: str, storage_options: Mapping[str, Any] | None = None) -> list[tuple[str, int]]:
    """``[(shard_url, nsamples), ...]`` of a ``wids`` index file (relative URLs resolved against it)."""
    try:
        index = json.loads(U.read_bytes(url, storage_options))
        entries = index["shardlist"]
        base = url.rsplit("/", 1)[0] if "/" in url else "."
        return [(U.join_url(base, str(e["url"])), int(e["nsamples"])) for e in entries]
    except FileNotFoundError:
        raise FileNotFoundError(f"shard index {url} does not exist") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"shard index {url}: expected {{'shardlist': [{{'url', 'nsamples'}}, ...]}} ({exc})") from None


_META = re.compile(r"__[^/]*__($|/)")  # WebDataset's metadata members (skipped, as webdataset does)


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, seekable: bool) -> bytes:
    if seekable and not info.issparse():
        f = tar.fileobj  # the (decompressed) tar stream; offsets are into it
        f.seek(info.offset_data)  # type: ignore[union-attr]
        data = f.read(info.size)  # type: ignore[union-attr]
        if len(data) != info.size:
            raise tarfile.ReadError(f"unexpected end of data in member {info.name}")
        return data
    handle = tar.extractfile(info)
    assert handle is not None  # a regular member
    return handle.read()


def _members(url: str, storage_options: Mapping[str, Any] | None) -> Iterator[tuple[str, str, Callable[[], bytes]]]:
    """``(key, extension, read)`` of every sample member of one shard, in tar order.

    Keys and extensions follow WebDataset (``dir/key.ext.ext2`` -> ``("dir/key", "ext.ext2")``,
    extension lower-cased; ``__...__`` metadata and non-regular members skipped). ``read()``
    returns the member's bytes; a member that is not read costs its header only: local shards
    are opened seekable (``tarfile`` ``r:*``) and skipped members are seeked over; other URLs are
    streamed (``r|*``) and skipped members are not extracted (their bytes still pass the stream).
    """
    seekable = U.is_local(url)
    with U.open_url(url, "rb", storage_options) as handle, \
            tarfile.open(fileobj=handle, mode="r:*" if seekable else "r|*") as tar:
        while (info := tar.next()) is not None:
            tar.members = []  # tarfile keeps every header otherwise
            if not info.isreg() or _META.match(info.name):
                continue
            key, ext = base_plus_ext(info.name)
            if key is None:
                continue
            yield key, ext.lower(), lambda info=info: _read_member(tar, info, seekable)  # type: ignore[misc]


def iter_shard(
    url: str, storage_options: Mapping[str, Any] | None = None, first: int = 0, last: int | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(n, raw)`` for the samples ``first <= n < last`` of one tar shard, in order.

    ``raw`` = ``{"__key__", "__url__", ext: bytes}`` (WebDataset's grouping of consecutive
    members with one key). The members of samples before ``first`` are not read (see
    :func:`_members`), so a worker whose range starts inside a shard pays headers, not data.

    Raises:
        ValueError: two members of one sample with the same extension.
        tarfile.TarError, OSError: an unreadable or truncated shard.
    """
    n, key = -1, None
    sample: dict[str, Any] | None = None
    for k, ext, read in _members(url, storage_options):
        if k != key:
            if sample is not None:
                yield n, sample
            key, n, sample = k, n + 1, None
            if last is not None and n >= last:
                return
            if n >= first:
                sample = {"__key__": k, "__url__": url}
        if sample is None:
            continue
        if ext in sample:
            raise ValueError(f"{url}: member {k}.{ext} appears twice in one sample")
        sample[ext] = read()
    if sample is not None:
        yield n, sample


def iter_raw_samples(url: str, storage_options: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Raw samples ``{"__key__", "__url__", ext: bytes}`` of one tar shard, in order."""
    for _, raw in iter_shard(url, storage_options):
        yield raw


def count_samples(url: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """Number of samples in one shard (reads its member headers, not their data)."""
    n, key = 0, None
    for k, _, _ in _members(url, storage_options):
        if k != key:
            n, key = n + 1, k
    return n


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """Samples of WebDataset tar shards (base class; subclasses implement :meth:`decode`).

    Args:
        urls: shard URLs: a brace pattern (``"s3://b/train-{000000..000127}.tar"``), several
            joined by ``::``, or a list; local paths, ``file://``, ``s3://``, ``gs://``... (any
            fsspec protocol). Optional when ``index`` lists the shards.
        index: a ``wids`` JSON index with the sample count of every shard (the converter writes
            ``index.json`` next to its shards); without it each shard is read once to count.
        storage_options: fsspec options (credentials, ``client_kwargs.endpoint_url``...).
        shuffle: shuffle shard order per epoch and samples through a buffer.
        shuffle_buffer: samples held by each worker's shuffle buffer.
        seed: seed of the shuffling (equal on every rank).
        strict: raise on a bad sample instead of skipping it.
        name: ``meta["source"]`` of samples whose shard does not record one.

    The iteration parameters (epoch, rank, world size, workers, batch size, entries to skip)
    are set by :class:`~da_toolkit.data.shards.loader.ShardLoader` before each epoch.
    """

    name: str = "shards"
    stream: str = "shards"

    def __init__(
        self,
        urls: str | list[str] | None = None,
        index: str | None = None,
        storage_options: dict[str, Any] | None = None,
        shuffle: bool = True,
        shuffle_buffer: int = 256,
        seed: int = 0,
        strict: bool = False,
        name: str | None = None,
    ) -> None:
        if urls is None and index is None:
            raise ValueError(f"{type(self).__name__}: give `urls` (shard pattern) and/or `index`")
        if shuffle_buffer < 1:
            raise ValueError(f"{type(self).__name__}.shuffle_buffer={shuffle_buffer}: expected >= 1")
        self.storage_options = dict(storage_options or {})
        self.shuffle, self.shuffle_buffer, self.seed, self.strict = shuffle, shuffle_buffer, seed, strict
        if name is not None:
            self.name = name
        self.shards = self._resolve(urls, index)
        self.transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.counter = SkipCounter()
        # iteration parameters (ShardLoader sets them before every epoch)
        self.epoch, self.batch_size, self.drop_last = 0, 1, False
        self.rank: int | None = None
        self.world_size: int | None = None
        self.num_workers = 0
        self.skip: dict[int, int] = {}
        self.worker_offset = 0

    # ------------------------------------------------------------------ shard list
    def _resolve(self, urls: str | list[str] | None, index: str | None) -> list[tuple[str, int]]:
        if index is not None:
            listed = read_index(index, self.storage_options)
            if urls is None:
                return listed
            counts = {u: n for u, n in listed}
            wanted = U.expand_shard_urls(urls)
            missing = [u for u in wanted if u not in counts]
            if missing:
                raise ValueError(f"shard index {index} does not list {missing[0]} ({len(missing)} of the shards)")
            return [(u, counts[u]) for u in wanted]
        found = U.expand_shard_urls(urls)  # type: ignore[arg-type]
        log.info("%s: counting the samples of %d shards (give `index` to skip this)", type(self).__name__, len(found))
        return [(u, count_samples(u, self.storage_options)) for u in found]

    @property
    def total_samples(self) -> int:
        """Samples in all shards together (one epoch of the whole job, before the remainder cut)."""
        return sum(n for _, n in self.shards)

    @property
    def skipped(self) -> int:
        """Bad samples skipped so far by this process and its workers."""
        return self.counter.total

    def _rank_world(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return _dist_rank_world()

    def __len__(self) -> int:
        """Samples this rank yields per epoch (``total // world_size``)."""
        return self.total_samples // self._rank_world()[1]

    def __getitem__(self, index: int) -> dict[str, Any]:
        raise TypeError(
            f"{type(self).__name__} is a streaming source (no random access): use it as a training stream of "
            "da_toolkit.data.shards.datamodule.ShardStudentDataModule, or iterate it (docs/scale.md)"
        )

    # ------------------------------------------------------------------ planning
    def shard_order(self, epoch: int) -> list[int]:
        """Shard indices in the order of ``epoch`` (identical on every rank)."""
        if not self.shuffle:
            return list(range(len(self.shards)))
        return [int(i) for i in np.random.default_rng([self.seed, epoch, 7]).permutation(len(self.shards))]

    def worker_range(self, epoch: int, rank: int, world: int, worker: int, workers: int) -> tuple[int, int]:
        """Global sample positions ``[start, stop)`` (in the epoch's shard order) of one worker."""
        per_rank = self.total_samples // world
        bs = max(1, self.batch_size)
        n_batches = per_rank // bs if self.drop_last else -(-per_rank // bs)
        used = min(per_rank, n_batches * bs)
        bounds = np.linspace(0, n_batches, workers + 1).round().astype(int) if workers > 1 else np.array([0, n_batches])
        b0, b1 = int(bounds[worker]), int(bounds[worker + 1])
        base = rank * per_rank
        return base + min(b0 * bs, used), base + min(b1 * bs, used)

    def _segments(self, epoch: int, start: int, stop: int) -> list[tuple[str, int, int, int]]:
        """``(url, first, last, offset)``: the part ``[first, last)`` of each shard inside
        ``[start, stop)``; ``offset`` = worker-local index of the shard's sample ``first``."""
        out = []
        pos = 0
        for i in self.shard_order(epoch):
            url, n = self.shards[i]
            lo, hi = max(start, pos), min(stop, pos + n)
            if lo < hi:
                out.append((url, lo - pos, hi - pos, lo - start))
            pos += n
        return out

    # ------------------------------------------------------------------ decoding
    def decode(self, raw: dict[str, Any], where: str) -> dict[str, Any]:  # pragma: no cover - abstract
        """Raw WebDataset sample -> sample dict; raises ``SampleReadError`` for a bad one."""
        raise NotImplementedError

    def _raw_in(self, segments: list[tuple[str, int, int, int]], first_needed: int) -> Iterator[tuple[int, Any]]:
        """``(local_index, raw or SampleReadError)`` for the worker's samples from ``first_needed`` on."""
        for url, first, last, offset in segments:
            if offset + (last - first) <= first_needed:
                continue
            j = begin = first + max(0, first_needed - offset)  # samples before `begin` are not read
            try:
                for n, raw in iter_shard(url, self.storage_options, begin, last):
                    yield offset + (n - first), raw
                    j = n + 1
            except (OSError, tarfile.TarError, ValueError, EOFError) as exc:
                # a truncated/corrupt shard: the rest of its samples in this range are bad
                err = SampleReadError(url, f"unreadable shard after sample {j} ({type(exc).__name__}: {exc})")
                for n in range(j, last):
                    yield offset + (n - first), err
                continue
            if j < last:
                err = SampleReadError(url, f"shard ends before sample {j}, the index says it has at least {last}")
                for n in range(j, last):
                    yield offset + (n - first), err

    def _bad(self, exc: SampleReadError) -> None:
        if self.strict:
            raise StrictModeError(exc.path, f"{exc.reason} (strict mode; set strict=False to skip bad samples)") from exc
        total = self.counter.add()
        log.warning("%s: skipping bad sample: %s (%d skipped so far in this stream)", self.stream, exc, total)

    def _process(self, raw: Any, where: str) -> dict[str, Any] | None:
        if isinstance(raw, SampleReadError):
            self._bad(raw)
            return None
        try:
            sample = self.decode(raw, where)
            return self.transform(sample) if self.transform is not None else sample
        except SampleReadError as exc:
            self._bad(exc)
            return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else ((info.id + self.worker_offset) % info.num_workers, info.num_workers)
        rank, world = self._rank_world()
        start, stop = self.worker_range(self.epoch, rank, world, worker, workers)
        n = stop - start
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
        order = buffer_order(n, self.shuffle_buffer if self.shuffle else 1, rng)
        done = int(self.skip.get(worker, 0))
        if done >= n:
            return
        remaining = order[done:]
        needed = {int(i) for i in remaining}
        pending: dict[int, Any] = {}
        raws = self._raw_in(self._segments(self.epoch, start, stop), int(remaining.min()))
        owed = 0
        last_good: dict[str, Any] | None = None
        for k, want in enumerate(remaining, start=done + 1):
            want = int(want)
            while want not in pending:
                try:
                    idx, raw = next(raws)
                except StopIteration:
                    raise RuntimeError(f"{self.stream}: sample {want} of worker {worker} was never read") from None
                if idx in needed:
                    pending[idx] = raw
            raw = pending.pop(want)
            where = f"{raw['__url__']}:{raw['__key__']}" if isinstance(raw, dict) else ""
            sample = self._process(raw, where)
            if sample is None:
                owed += 1
                continue
            last_good = sample
            for _ in range(1 + owed):
                yield {**sample, STATE_KEY: (worker, k)}
            owed = 0
        if owed:
            if last_good is None:
                raise RuntimeError(f"{self.stream}: every sample of worker {worker} (rank {rank}) was bad")
            for _ in range(owed):
                yield {**last_good, STATE_KEY: (worker, len(order))}
