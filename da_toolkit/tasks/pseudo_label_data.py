"""The pseudo-label job's data: unlabeled sources -> prepared items; finished items are never read.

* :class:`UnlabeledImages` - the predict-only LightningDataModule of ``da-toolkit pseudo-label``;
* :class:`_PreparedItems` - items of one map-style source still to label (prepared for the
  teacher in the loader workers);
* :class:`_StreamItems` - items of sharded image streams (``sharded_images``: WebDataset tar
  shards, local or ``s3://``) still to label, split across ranks and loader workers.

**Resume without decoding.** Items already in the store are skipped *before* they are read:

* a map-style source that can name an item without reading it - a method ``item_id(index) ->
  str`` returning the ``meta["id"]`` its ``__getitem__(index)`` would give (``image_folder`` and
  ``synthetic`` have it) - is filtered when the job is set up: the loader only ever sees the
  indices still to label;
* a source without ``item_id`` is read and then skipped (a warning says so once);
* a shard stream is filtered per record *before* decoding: the id is the record's ``json``
  member's ``id``, else the sample's key (as :class:`~da_toolkit.data.shards.ShardedImages`
  decodes it).

Every rank reads the store's finished ids in the data module's ``setup`` (Lightning runs it on
every rank before a barrier, so before any rank writes an item), hence all ranks filter the same
way and Lightning's predict sampler splits the same list. Shard streams are split into
``world_size x num_workers`` contiguous ranges of the concatenated shards (uneven counts are
fine in predict), so every record is read by exactly one worker of one rank: each item is
labeled exactly once.
"""

from __future__ import annotations

import tarfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

StoreFormat = Literal["files", "shards"]


def store_done_ids(root: str | Path) -> set[str]:
    """Ids of every finished item in every shard of a file store (empty if the store is new)."""
    from da_toolkit.data.pseudo_store import SHARD_HEADER, read_manifest

    root = Path(root)
    if not root.is_dir():
        return set()
    done: set[str] = set()
    for shard in sorted(p for p in root.iterdir() if (p / SHARD_HEADER).exists()):
        for entry in read_manifest(shard):
            if (shard / entry["file"]).is_file():
                done.add(entry["id"])
    return done


def _prepare(sample: dict[str, Any], where: str, input_size: int, multiple: int, strict: bool,
             image: tuple[bytes, str] | None) -> dict[str, Any]:
    """A decoded sample -> a prepared item (``skip`` with ``error`` when the image is refused)."""
    from da_toolkit.models.preprocess import prepare_image

    meta = sample.get("meta", {})
    if "id" not in meta or "image_ref" not in meta:
        raise ValueError(f"{where}: sample meta needs 'id' and 'image_ref' to be pseudo-labeled")
    item = {"id": str(meta["id"]), "image_ref": meta["image_ref"], "size": tuple(sample["image"].shape[:2])}
    try:
        prepared = prepare_image(sample["image"], input_size, multiple=multiple)[0]
    except ValueError as exc:  # e.g. refused by the size guard (absurd aspect ratio)
        if strict:
            raise ValueError(f"{where} ({item['id']}): {exc}") from None
        return {**item, "skip": True, "image": None, "error": f"{item['id']}: {exc}"}
    if image is not None:  # the encoded image, stored next to its label (shard stores)
        item["image_bytes"], item["image_format"] = image
    return {**item, "skip": False, "image": prepared}


def _failed(where: str, reason: str) -> dict[str, Any]:
    return {"id": where, "skip": True, "image": None, "error": reason}


class _PreparedItems(Dataset):
    """Items of one map-style source still to label: ``{"image": (3,h',w') normalised, "size",
    "id", "image_ref", "skip"}`` (+ ``image_bytes``/``image_format`` with ``keep_images``).

    With a source that has ``item_id(index)``, the finished ids ``done`` are filtered out here,
    before any item is read (:attr:`indices` are the items still to label); otherwise every item
    is read and the finished ones come back as ``skip``.
    """

    def __init__(self, source: Dataset, input_size: int, multiple: int, done: set[str] | frozenset[str],
                 strict: bool = False, keep_images: bool = False, image_format: str = "jpg",
                 quality: int = 95) -> None:
        self.source = source
        self.input_size, self.multiple, self.strict = input_size, multiple, strict
        self.keep_images, self.image_format, self.quality = keep_images, image_format, quality
        n = len(source)  # type: ignore[arg-type]
        self.by_id = callable(getattr(source, "item_id", None))
        if self.by_id:
            item_id = source.item_id  # type: ignore[attr-defined]
            self.indices = np.fromiter((i for i in range(n) if str(item_id(i)) not in done), dtype=np.int64)
            self.done: set[str] | frozenset[str] = frozenset()  # not shipped to the loader workers
        else:
            if done:
                warnings.warn(f"pseudo-label: {type(source).__name__} has no item_id(index), so its finished "
                              "items are read and decoded before they are skipped", UserWarning, stacklevel=3)
            self.indices = np.arange(n, dtype=np.int64)
            self.done = done

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, Any]:
        from da_toolkit.data.errors import SampleReadError
        from da_toolkit.data.shards.codec import encode_image

        index = int(self.indices[position])
        where = f"{type(self.source).__name__}[{index}]"
        try:
            sample = self.source[index]
        except SampleReadError as exc:  # unreadable file: reported, skipped (strict: raised)
            if self.strict:
                raise
            return _failed(where, str(exc))
        item_id = str(sample.get("meta", {}).get("id"))
        if self.by_id and item_id != str(self.source.item_id(index)):  # type: ignore[attr-defined]
            raise ValueError(f"{where}: item_id({index}) is {self.source.item_id(index)!r} but the sample's "  # type: ignore[attr-defined]
                             f"meta id is {item_id!r}; item_id must name the item __getitem__ returns")
        if item_id in self.done:
            return {"id": item_id, "skip": True, "image": None}
        image = None
        if self.keep_images:
            image = (encode_image(sample["image"], self.image_format, self.quality), self.image_format)
        return _prepare(sample, where, self.input_size, self.multiple, self.strict, image)


def _record_id(info: dict[str, Any], raw: dict[str, Any]) -> str:
    """The item id of a raw shard record, as ``ShardedImages`` decodes it: json ``id``, else the key."""
    return str(info.get("id", raw.get("__key__")))


class _StreamItems(IterableDataset):
    """Items of shard streams (:class:`~da_toolkit.data.shards.ShardStream`) still to label.

    The records of all streams, concatenated in their shard order (no shuffling), are cut into
    ``world_size * num_workers`` contiguous ranges; rank ``r``'s worker ``w`` reads range
    ``r * num_workers + w``. A record whose id is in ``done`` is skipped before its image is
    decoded. A corrupt record, or the rest of a truncated shard, is one failed item.

    :attr:`rank` and :attr:`world_size` are set by :class:`UnlabeledImages` before the loader
    starts its workers.
    """

    def __init__(self, streams: Sequence[Any], input_size: int, multiple: int, done: set[str] | frozenset[str],
                 strict: bool = False, keep_images: bool = False) -> None:
        self.streams = list(streams)
        self.input_size, self.multiple, self.strict, self.keep_images = input_size, multiple, strict, keep_images
        self.done = frozenset(done)
        #: (stream index, shard url, samples) in reading order
        self.shards = [(k, str(url), int(n)) for k, s in enumerate(self.streams) for url, n in s.shards]
        self.rank, self.world_size = 0, 1

    @property
    def total(self) -> int:
        """Records in all shards together."""
        return sum(n for _, _, n in self.shards)

    def part(self, rank: int, world: int, worker: int, workers: int) -> tuple[int, int]:
        """Global record positions ``[start, stop)`` read by one worker of one rank."""
        parts, k = world * workers, rank * workers + worker
        return self.total * k // parts, self.total * (k + 1) // parts

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        start, stop = self.part(self.rank, self.world_size, worker, workers)
        pos = 0
        for k, url, n in self.shards:
            lo, hi = max(start, pos), min(stop, pos + n)
            if lo < hi:
                yield from self._records(self.streams[k], url, lo - pos, hi - pos)
            pos += n

    def _records(self, stream: Any, url: str, first: int, last: int) -> Iterator[dict[str, Any]]:
        from da_toolkit.data.shards.stream import iter_raw_samples

        records = iter_raw_samples(url, stream.storage_options)
        try:
            yield from self._in_range(stream, url, enumerate(records), first, last)
        finally:
            records.close()

    def _in_range(self, stream: Any, url: str, raws: Iterator[tuple[int, dict[str, Any]]], first: int,
                  last: int) -> Iterator[dict[str, Any]]:
        from da_toolkit.data.errors import SampleReadError

        j = first
        while j < last:
            try:  # only reading the tar is guarded here: a record's own errors are per item
                n, raw = next(raws)
            except StopIteration:
                msg = f"shard has {j} samples, its index says at least {last}"
                break
            except (OSError, tarfile.TarError, ValueError, EOFError) as exc:
                msg = f"unreadable shard after sample {j} ({type(exc).__name__}: {exc})"
                break
            if n < first:
                continue
            j = n + 1
            item = self._item(stream, raw, f"{url}:{raw['__key__']}")
            if item is not None:
                yield item
        else:
            return
        if self.strict:
            raise SampleReadError(url, msg)
        yield _failed(url, f"{url}: {msg}; the rest of its records in this range are not labeled")

    def _item(self, stream: Any, raw: dict[str, Any], where: str) -> dict[str, Any] | None:
        from da_toolkit.data.errors import SampleReadError
        from da_toolkit.data.shards.codec import IMAGE_EXTS, read_info

        try:
            item_id = _record_id(read_info(raw, where), raw)
            if item_id in self.done:
                return None  # finished: never decoded
            sample = stream.decode(raw, where)
        except SampleReadError as exc:
            if self.strict:
                raise
            return _failed(where, str(exc))
        if str(sample["meta"]["id"]) != item_id:
            raise ValueError(f"{where}: {type(stream).__name__} decodes id {sample['meta']['id']!r}, but the "
                             f"record names {item_id!r} (json 'id', else the key); they must agree to resume")
        image = None
        if self.keep_images:  # the record's own encoded image: no re-encoding, no loss
            ext = next(e for e in IMAGE_EXTS if e in raw)
            image = (bytes(raw[ext]), ext)
        return _prepare(sample, where, self.input_size, self.multiple, self.strict, image)


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


def _is_stream(source: Any) -> bool:
    return isinstance(source, IterableDataset)


class UnlabeledImages(pl.LightningDataModule):
    """Predict-only data module over unlabeled sources for pseudo-labelling.

    Args:
        sources: data sources: map-style (``image`` + ``meta`` with ``id`` and ``image_ref``;
            with ``item_id(index)`` finished items are skipped unread) or sharded image streams
            (``sharded_images``; output ``store_format: shards`` only). Not both kinds at once.
        store: the pseudo-label store; items already in it are skipped (resume).
        input_size: lower bound of the shorter side fed to the teacher (official: 518).
        batch_size: items per predict step (same-size items are batched together).
        num_workers: loader worker processes.
        strict: stop at the first unreadable or refused image (naming it) instead of reporting it
            and labelling the rest.
        store_format: ``files`` (the file-per-item store) or ``shards`` (tar shards); which
            finished items of ``store`` to skip.
        storage_options: fsspec options of a shard store URL (``s3://...``).

    :attr:`keep_images` (set by the command for shard stores that keep the images) passes each
    image, encoded in the loader workers (:attr:`image_format`, :attr:`image_quality`; a shard
    record's own image bytes as they are), on to the writer.
    """

    def __init__(
        self,
        sources: Sequence[Dataset],
        store: str | None = None,
        input_size: int = 518,
        batch_size: int = 1,
        num_workers: int = 0,
        strict: bool = False,
        store_format: StoreFormat = "files",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if store_format not in ("files", "shards"):
            raise ValueError(f"data.store_format: expected 'files' or 'shards', got {store_format!r}")
        if not sources:
            raise ValueError("data.sources: give at least one unlabeled data source")
        streams = [_is_stream(s) for s in sources]
        if any(streams) and not all(streams):
            raise ValueError("data.sources: mixes sharded streams and map-style sources; label them in two runs "
                             "into the same store")
        if any(streams) and store_format != "shards":
            raise ValueError("data.sources: sharded image streams need the shard output (--format shards): the "
                             "file store cannot point back into a shard")
        self.sources = list(sources)
        self.store = store
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.strict = bool(strict)
        self.store_format = store_format
        self.storage_options = dict(storage_options or {})
        self.keep_images = False
        self.image_format, self.image_quality = "jpg", 95
        self.dataset: Dataset | None = None

    @property
    def streaming(self) -> bool:
        """True when the sources are sharded streams."""
        return _is_stream(self.sources[0])

    def setup(self, stage: str) -> None:
        """Lightning hook: the items still to label, prepared for the network (done ids skipped unread)."""
        from torch.utils.data import ConcatDataset

        done = self.done_ids()
        multiple = self.input_multiple()
        if self.streaming:
            self.dataset = _StreamItems(self.sources, self.input_size, multiple, done, self.strict, self.keep_images)
            return
        self.dataset = ConcatDataset([
            _PreparedItems(s, self.input_size, multiple, done, self.strict, self.keep_images, self.image_format,
                           self.image_quality)
            for s in self.sources
        ])

    def done_ids(self) -> set[str]:
        """Ids already in the store (skipped): finished items (files) or items of finished shards."""
        if not self.store:
            return set()
        if self.store_format == "shards":
            from da_toolkit.data.shards.prediction_writer import shard_store_done_ids

            return shard_store_done_ids(self.store, self.storage_options)
        return store_done_ids(self.store)

    def input_multiple(self) -> int:
        """The teacher's input multiple (network-input sides are multiples of it)."""
        from da_toolkit.models.inference_core import input_multiple

        task = self.trainer.lightning_module if self._trainer_attached() else None
        model = getattr(task, "model", None)
        if model is None:
            raise RuntimeError("UnlabeledImages: set up outside a Trainer; the teacher's input multiple is unknown")
        return int(input_multiple(model))

    def _trainer_attached(self) -> bool:
        return getattr(self, "trainer", None) is not None and self.trainer.lightning_module is not None

    def predict_dataloader(self) -> DataLoader:
        """The loader over every item still to label."""
        assert self.dataset is not None
        if isinstance(self.dataset, _StreamItems):
            if self._trainer_attached():
                self.dataset.rank, self.dataset.world_size = self.trainer.global_rank, self.trainer.world_size
            return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                              collate_fn=_collate)
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=_collate)
