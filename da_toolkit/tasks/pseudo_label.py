"""Offline pseudo-labelling through Lightning's predict loop (DDP-ready, resumable).

* :class:`UnlabeledImages` (:mod:`da_toolkit.tasks.pseudo_label_data`) - a LightningDataModule
  over unlabeled data sources (map-style or sharded image streams); each item is preprocessed
  like the official inference (keep aspect, shorter side >= ``input_size``, sides multiples of
  the teacher's input multiple, bicubic) in the loader workers; items already in the store are
  skipped before they are read.
* :class:`PseudoLabelTask` - a frozen teacher; ``predict_step`` returns per item the relative
  disparity at the original image size.
* :class:`PseudoLabelStoreWriter` - a prediction-writer callback; rank ``r`` writes shard
  ``rank<r>`` of the store (:class:`da_toolkit.data.pseudo_store.PseudoLabelWriter`), so ranks
  never share files. Lightning's predict sampler does not repeat items across ranks, so each item
  is labeled exactly once.
* :class:`PseudoLabelShardStoreWriter` - the same for a store of tar shards
  (:class:`da_toolkit.data.shards.prediction_writer.PseudoLabelShardCallback`, ``docs/scale.md``).

Both take the lock of their shard from :func:`take_store_lock`, which the command calls before
the teacher is loaded (a second writer of a shard is refused before any costly work), and turn a
failed write (full disk, read-only store) into :class:`StoreWriteError` naming the store.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import nn

from da_toolkit.data.locks import HeldLock
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.tasks.model_spec import freeze
from da_toolkit.tasks.pseudo_label_data import (  # noqa: F401 - re-exported: the job's data
    StoreFormat,
    UnlabeledImages,
    _collate,
    _PreparedItems,
    store_done_ids,
)


class StoreWriteError(RuntimeError):
    """Writing to the pseudo-label store failed (full disk, read-only folder...); names the store.

    ``before_work`` is True when it happened before any item was labeled (the store could not be
    created or locked)."""

    def __init__(self, message: str, before_work: bool = False) -> None:
        super().__init__(message)
        self.before_work = before_work


def model_hash(model: nn.Module) -> str:
    """Identity of a teacher: ``"sha256:<hex>"`` of its state dict (names, dtypes, shapes, values).

    The same weights give the same identity whichever file format they were read from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


class PseudoLabelTask(pl.LightningModule):
    """A frozen teacher producing relative disparity at the original image size.

    Args:
        teacher: the trained teacher: a model description (``{preset: NAME, weights: FILE}``,
            ``class_path: DepthModel`` + ``init_args``) or a weights file that records its model
            (a teacher ``.ckpt``, our safetensors). The sha256 of its weights is recorded in
            every shard of the store.
        allow_random_weights: label with a teacher whose weights were never loaded (tests,
            smoke runs). Off by default: such a teacher is refused, its labels would be noise.
        max_failures: unreadable or refused images tolerated before the command's exit status
            is 1 (default 0: any failure; ``null``: never; the summary is printed either way).
        check_contracts: check the teacher's encoder/decoder against their declarations with
            one tiny dry forward when built (:func:`da_toolkit.models.contract.check_model`, key
            ``model.teacher``).

    A prediction that is constant over the image or not finite stops the job before it is written
    (:func:`da_toolkit.tasks.health.check_pseudo_labels`, naming the teacher file and the image).
    """

    def __init__(self, teacher: DepthModel, allow_random_weights: bool = False, max_failures: int | None = 0,
                 check_contracts: bool = True) -> None:
        super().__init__()
        if max_failures is not None and max_failures < 0:
            raise ValueError(f"model.max_failures must be >= 0 or null, got {max_failures}")
        self.max_failures = max_failures
        if check_contracts:
            from da_toolkit.models.contract import check_model
            from da_toolkit.tasks.base import one_thread

            with one_thread():
                check_model(teacher, "model.teacher")
        if not getattr(teacher, "weights_loaded", True):
            if not allow_random_weights:
                raise ValueError(
                    "model.teacher: no weights were loaded (a randomly initialised teacher labels noise); set "
                    "model.teacher.init_args.weights (or give a teacher .ckpt), or model.allow_random_weights: true"
                )
            warnings.warn("pseudo-labelling with an untrained (randomly initialised) teacher", UserWarning,
                          stacklevel=2)
        self.model = freeze(teacher)
        #: the teacher's weights file (named when its labels are refused), if it was built from one
        self.teacher_file: str | None = (getattr(teacher, "init_args", None) or {}).get("weights")
        self.teacher_hash = model_hash(self.model)
        from da_toolkit.models.description import describe_model

        self.settings_base = {"model": describe_model(self.model)}
        self.failures: list[str] = []  # unreadable / refused items of this run (not written)

    @property
    def exit_status(self) -> int:
        """1 when more items failed than ``max_failures`` allows, else 0."""
        return int(self.max_failures is not None and len(self.failures) > self.max_failures)

    def on_predict_end(self) -> None:
        """Lightning hook: print the items that could not be labeled, with the exit status they cause."""
        if self.failures:
            lines = "\n".join(f"  {f}" for f in self.failures)
            verdict = "exit status 1" if self.exit_status else f"tolerated (max_failures={self.max_failures})"
            print(f"pseudo-label: {len(self.failures)} item(s) could not be labeled (re-run to retry); "
                  f"{verdict}:\n{lines}")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Lightning hook: the batch as it is (:func:`run_prepared` moves the stacked images itself).

        Lightning's default walks every element of the batch, and ``bytes`` are sequences: an
        encoded image of 100 KB stored with its label cost 100,000 Python calls per item (measured
        in ``benchmarks/bench_pseudo_label.py``, ``docs/scale.md``).
        """
        return batch

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[dict[str, Any]]:
        """Per item: ``{"id", "image_ref", "disparity": float32 (H,W) numpy}`` (skipped items left out)."""
        from da_toolkit.models.inference_core import align_corners_of, run_prepared
        from da_toolkit.tasks.health import check_pseudo_labels

        for item in batch:
            if item.get("error"):
                self.failures.append(item["error"])
                warnings.warn(f"pseudo-label: skipped {item['error']}", UserWarning, stacklevel=2)
        todo = [item for item in batch if not item["skip"]]
        if not todo:
            return []
        dtype = next(self.model.parameters()).dtype
        preds = run_prepared(self.model, [it["image"] for it in todo], [it["size"] for it in todo],
                             align_corners_of(self.model), self.device, dtype)
        for it, p in zip(todo, preds, strict=True):  # a dead or broken teacher never writes a store
            scale = float(p.detach().abs().max()) if p.numel() else 0.0
            # resampling a constant map is constant up to float rounding: tolerate 1e-5 of its scale
            check_pseudo_labels(p[None].float(), self.teacher_file, [it["id"]], atol=1e-5 * scale)
        out = [{"id": it["id"], "image_ref": it["image_ref"], "disparity": p.float().cpu().numpy()}
               for it, p in zip(todo, preds, strict=True)]
        for entry, it in zip(out, todo, strict=True):
            if it.get("image_bytes") is not None:  # encoded in the loader worker
                entry["image"], entry["image_format"] = it["image_bytes"], it["image_format"]
        return out


def shard_name(rank: int) -> str:
    """The shard (file store) / writer (shard store) name of global rank ``rank``: ``rank000``."""
    return f"rank{rank:03d}"


class _ShardFileLock(HeldLock):
    """``flock`` on ``<root>/.<shard>.lock``, the lock file of a local shard store's writer."""

    def __init__(self, root: str, shard: str) -> None:
        from da_toolkit.data.locks import try_lock
        from da_toolkit.data.shards import urls

        self.shard = shard
        self.handle = try_lock(
            urls.local_path(root) / f".{shard}.lock",
            f"pseudo-label shards {shard!r} in {root} are being written by another process; wait for it "
            "to finish, or give every writer (rank) its own shard name",
        )


def take_store_lock(store: str, store_format: StoreFormat, shard: str) -> Any:
    """Lock shard ``shard`` of ``store`` now, before the teacher is loaded; hand it to the writer.

    Files: :func:`da_toolkit.data.pseudo_store.lock_shard`. Shards: the writer's lock file on a
    local root (object storage has no lock: ``None``; keep one writer per rank name there).

    Raises:
        ShardBusyError: another live process writes this shard (one line).
        StoreWriteError: the store folder cannot be created or written.
    """
    import sys

    try:
        if store_format == "files":
            from da_toolkit.data.pseudo_store import lock_shard

            return lock_shard(store, shard)
        from da_toolkit.data.shards import urls

        if not urls.is_local(store) or sys.platform == "win32":
            return None
        return _ShardFileLock(store, shard)
    except OSError as exc:
        raise StoreWriteError(f"cannot write to pseudo-label store {store}: {exc.strerror or exc}",
                              before_work=True) from None


class _LockHandOff:
    """The early lock of :func:`take_store_lock`, kept only if it is the shard of the writer's rank."""

    def __init__(self, lock: Any, shard: str | None) -> None:
        self.lock, self.shard = lock, shard

    def for_shard(self, shard: str) -> Any:
        lock, self.lock = self.lock, None
        if lock is not None and self.shard != shard:  # guessed another rank: let the writer lock its own
            lock.close()
            return None
        return lock

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None


class PseudoLabelStoreWriter(BasePredictionWriter):
    """Writes predictions of :class:`PseudoLabelTask` to shard ``rank<global_rank>`` of a store.

    Args:
        store: the store folder.
        dtype: ``float16`` (default) or ``float32`` ``.npy`` files.
        settings: extra settings recorded in every shard (the run's input size is added).
        lock: the shard lock taken earlier by :func:`take_store_lock` and the shard name it
            locks, ``(lock, "rank000")``; used if it is this rank's shard, else released.

    A write that fails (``OSError``: full disk, read-only store) stops the job with
    :class:`StoreWriteError` naming the store; :attr:`error` keeps its message.
    """

    def __init__(self, store: str, dtype: Literal["float16", "float32"] = "float16",
                 settings: dict[str, Any] | None = None, lock: tuple[Any, str] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.store = store
        self.dtype = dtype
        self.settings = dict(settings or {})
        self._lock = _LockHandOff(*lock) if lock is not None else _LockHandOff(None, None)
        self._writer: Any = None
        self.written = 0
        self.error: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: open this rank's store writer (predict only)."""
        from da_toolkit.data.pseudo_store import PseudoLabelWriter

        if stage != "predict" or self._writer is not None:
            return
        settings = {**getattr(pl_module, "settings_base", {}), **self.settings}
        shard = shard_name(trainer.global_rank)
        try:
            self._writer = PseudoLabelWriter(
                self.store, shard, str(getattr(pl_module, "teacher_hash", "unknown")),
                settings, dtype=self.dtype, lock=self._lock.for_shard(shard),
            )
        except OSError as exc:
            self._fail(exc, f"shard {shard}")

    def _fail(self, exc: OSError, what: str) -> None:
        self.error = f"cannot write to pseudo-label store {self.store} ({what}): {exc.strerror or exc}"
        raise StoreWriteError(self.error) from None

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        """Write the batch's pseudo-labels (items already in the store skipped)."""
        for item in prediction:
            if self._writer.is_done(item["id"]):  # exactly once, even if an item came twice
                continue
            try:
                self._writer.write(item["id"], item["image_ref"], np.asarray(item["disparity"], dtype=np.float32))
            except OSError as exc:
                self._fail(exc, f"item {item['id']}")
            self.written += 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: release this rank's lock and writer."""
        self.release()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Lightning hook: release this rank's lock and writer after a failure."""
        self.release()  # finished items are durable; the shard lock must not outlive a failed run

    def release(self) -> None:
        """Close the shard writer and release its lock (idempotent)."""
        self._lock.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _shard_callback_base() -> type:
    from da_toolkit.data.shards.prediction_writer import PseudoLabelShardCallback

    return PseudoLabelShardCallback


class PseudoLabelShardStoreWriter(_shard_callback_base()):  # type: ignore[misc]
    """:class:`~da_toolkit.data.shards.prediction_writer.PseudoLabelShardCallback` for the command:
    rank ``r`` writes ``rank<r>-NNNNNN.tar`` + ``rank<r>.index.json`` under the store.

    Args:
        root: store folder or URL.
        lock: ``(lock, shard name)`` from :func:`take_store_lock` (released just before the
            shard writer takes the same lock file itself).
        **kwargs: ``settings``, ``maxcount``, ``encoding``, ``zlib_level``, ``storage_options``
            of ``PseudoLabelShardCallback``.

    A failed write stops the job with :class:`StoreWriteError` naming the store; the unfinished
    shard is dropped (its items are redone by the next run), finished shards stay.
    """

    def __init__(self, root: str, lock: tuple[Any, str] | None = None, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self._lock = _LockHandOff(*lock) if lock is not None else _LockHandOff(None, None)
        self.error: str | None = None

    def _fail(self, exc: OSError, what: str) -> None:
        self.error = f"cannot write to pseudo-label store {self.root} ({what}): {exc.strerror or exc}"
        self._abort()
        raise StoreWriteError(self.error) from None

    def _abort(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: open this rank's shard writer (predict only)."""
        if stage != "predict" or self._writer is not None:
            return
        shard = shard_name(trainer.global_rank)
        lock = self._lock.for_shard(shard)
        if lock is not None:
            lock.close()  # the shard writer takes the same lock file itself, right now
        try:
            super().setup(trainer, pl_module, stage)
        except OSError as exc:
            self._fail(exc, f"writer {shard}")
        except RuntimeError as exc:  # the shard writer's own refusal of a second writer
            if "another process" not in str(exc):
                raise
            from da_toolkit.data.pseudo_store import ShardBusyError

            raise ShardBusyError(str(exc)) from None

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        """Write the batch's pseudo-labels into this rank's shards."""
        try:
            super().write_on_batch_end(trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                                       dataloader_idx)
        except OSError as exc:
            self._fail(exc, f"shard of {shard_name(trainer.global_rank)}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Lightning hook: release this rank's shard writer after a failure."""
        self.release()

    def release(self) -> None:
        """Drop the unfinished shard (never finalised by a failed run) and release the locks (idempotent)."""
        self._lock.close()
        self._abort()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: finish this rank's shard and release it."""
        self._lock.close()
        try:
            super().teardown(trainer, pl_module, stage)
        except OSError as exc:
            self.error = (f"cannot write to pseudo-label store {self.root} (last shard of "
                          f"{shard_name(trainer.global_rank)}): {exc.strerror or exc}")
            self._abort()
