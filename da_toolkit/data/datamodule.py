"""``DepthDataModule``: labeled + unlabeled training streams mixed per batch, full-size evaluation."""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from da_toolkit.data.collate import collate_samples
from da_toolkit.data.robust import SafeDataset
from da_toolkit.data.transforms import EvalTransform, TrainTransform

log = logging.getLogger("da_toolkit.data")


def _concat(sources: list[Dataset] | None) -> Dataset | None:
    if not sources:
        return None
    return sources[0] if len(sources) == 1 else ConcatDataset(sources)


class DepthDataModule(L.LightningDataModule):
    """Data module of the Depth Anything recipes.

    Training batches are ``{"labeled": {...}, "unlabeled": {...}}`` (either may be absent; see
    ``docs/architecture.md``): ``batch_size`` labeled and ``batch_size * unlabeled_ratio``
    unlabeled crops per step (1:2 by default), each stream the concatenation of its sources.
    Training geometry: resize the shorter side to ``crop_size``, random ``crop_size`` square crop,
    horizontal flip for labeled samples only. Validation/test/predict keep full images
    (``eval_batch_size=1`` by default since sizes differ; ``pad_eval_batches`` pads instead).

    Under DDP, Lightning replaces the samplers of both training loaders (and the evaluation
    loaders) with ``DistributedSampler`` s (``use_distributed_sampler=True``, the default).

    Args:
        labeled: labeled sources (depth + valid).
        unlabeled: unlabeled sources (images; any depth they carry is ignored).
        val: validation sources (labeled; full images, metrics at ground-truth resolution).
        test: test sources (labeled; full images).
        predict: prediction sources (images; full size).
        crop_size: training crop side in pixels (518 in the papers; tests use tiny sizes).
        batch_size: labeled samples per training batch (also the unlabeled batch size when
            there is no labeled stream).
        unlabeled_ratio: unlabeled samples per labeled sample in a batch.
        eval_batch_size: batch size of validation/test/predict loaders.
        pad_eval_batches: pad different-size evaluation images (valid=False) instead of failing.
        num_workers: data-loader worker processes.
        persistent_workers: keep workers between epochs (only with ``num_workers > 0``).
        pin_memory: pin host memory (for GPU training).
        strict: raise on unreadable/corrupt samples (naming the file) instead of skipping them
            with a warning and a running count.
        seed: seed of the shuffling order when not running distributed.
        hflip: enable the horizontal flip of labeled crops.
        mode: how the two streams are combined (Lightning ``CombinedLoader`` mode); the
            default cycles the shorter stream until the longer one is exhausted.

    Bad samples: every skipped sample is logged as a warning on the ``da_toolkit.data`` logger
    with the file and the running count of its stream (over all data-loader workers);
    :attr:`skipped_samples` gives the counts, and at the end of a Lightning run (``teardown``)
    a summary warning is printed and the counts go to the trainer's loggers as
    ``data/skipped_<stream>``.

    Subclassing: :meth:`_train_stream` (builds one training stream's loader) and :meth:`_loader`
    (builds a ``DataLoader`` with the module's worker/pinning/seed settings) are stable extension
    hooks; ``da_toolkit.data.student_datamodule.StudentDataModule`` overrides the first and calls the
    second. Their names and signatures are kept.
    """

    def __init__(
        self,
        labeled: list[Dataset] | None = None,
        unlabeled: list[Dataset] | None = None,
        val: list[Dataset] | None = None,
        test: list[Dataset] | None = None,
        predict: list[Dataset] | None = None,
        crop_size: int = 518,
        batch_size: int = 4,
        unlabeled_ratio: int = 2,
        eval_batch_size: int = 1,
        pad_eval_batches: bool = False,
        num_workers: int = 0,
        persistent_workers: bool = False,
        pin_memory: bool = False,
        strict: bool = False,
        seed: int = 0,
        hflip: bool = True,
        mode: Literal["max_size_cycle", "min_size", "max_size"] = "max_size_cycle",
    ) -> None:
        super().__init__()
        for name, value in (("crop_size", crop_size), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value < 1:
                raise ValueError(f"DepthDataModule.{name}={value}: expected >= 1")
        if unlabeled_ratio < 0 or num_workers < 0:
            raise ValueError("DepthDataModule.unlabeled_ratio and num_workers must be >= 0")
        self.labeled, self.unlabeled = labeled, unlabeled
        self.val, self.test, self.predict = val, test, predict
        self.crop_size, self.batch_size, self.unlabeled_ratio = crop_size, batch_size, unlabeled_ratio
        self.eval_batch_size, self.pad_eval_batches = eval_batch_size, pad_eval_batches
        self.num_workers, self.persistent_workers, self.pin_memory = num_workers, persistent_workers, pin_memory
        self.strict, self.seed, self.hflip, self.mode = strict, seed, hflip, mode
        self._safe: dict[str, SafeDataset] = {}

    # ------------------------------------------------------------------ bad samples
    @property
    def skipped_samples(self) -> dict[str, int]:
        """Stream name -> number of bad samples skipped so far by this process and its workers
        (only streams whose loaders were built; per rank under DDP)."""
        return {stream: safe.skipped for stream, safe in self._safe.items()}

    def teardown(self, stage: str) -> None:
        """Warn with the totals of skipped samples and send them to the trainer's loggers."""
        skipped = {k: v for k, v in self.skipped_samples.items() if v}
        if not skipped:
            return
        log.warning(
            "%s: bad samples were skipped: %s (see the warnings above for the files; strict=True raises instead)",
            stage, ", ".join(f"{k} {v}" for k, v in skipped.items()),
        )
        trainer = getattr(self, "trainer", None)
        for logger in getattr(trainer, "loggers", None) or []:
            logger.log_metrics({f"data/skipped_{k}": float(v) for k, v in skipped.items()}, step=trainer.global_step)

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset: Dataset, batch_size: int, *, shuffle: bool, collate: Any, drop_last: bool) -> DataLoader:
        """A ``DataLoader`` over ``dataset`` with this module's workers, pinning and shuffle seed.

        Stable extension hook (see the class docstring). A :class:`SafeDataset` passed here is
        remembered under its ``stream`` name for :attr:`skipped_samples`.
        """
        if isinstance(dataset, SafeDataset):
            self._safe[dataset.stream] = dataset
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        workers = self.num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=workers,
            persistent_workers=self.persistent_workers and workers > 0,
            pin_memory=self.pin_memory,
            collate_fn=collate,
            generator=generator,
        )

    def _train_stream(self, sources: list[Dataset] | None, batch_size: int, *, labeled: bool) -> DataLoader | None:
        """Shuffled training loader of one stream, or ``None`` when it has no sources.

        Stable extension hook (see the class docstring): ``sources`` are concatenated, wrapped in
        :class:`SafeDataset` with :class:`TrainTransform` (flip only when ``labeled``; unlabeled
        samples keep only ``image``, ``meta`` and ``intrinsics``) and batched by ``batch_size``.
        """
        data = _concat(sources)
        if data is None or batch_size == 0:
            return None
        if len(data) == 0:  # type: ignore[arg-type]
            raise ValueError(f"DepthDataModule: the {'labeled' if labeled else 'unlabeled'} stream is empty")
        transform = TrainTransform(self.crop_size, flip=labeled and self.hflip)
        if not labeled:
            transform = _drop_labels(transform)
        safe = SafeDataset(data, transform, strict=self.strict, stream="labeled" if labeled else "unlabeled")
        collate = functools.partial(collate_samples, require_depth=labeled)
        # drop the ragged last batch when there is at least one full batch
        return self._loader(safe, batch_size, shuffle=True, collate=collate, drop_last=len(safe) >= batch_size)

    def train_dataloader(self) -> CombinedLoader:
        """``CombinedLoader`` yielding ``{"labeled": batch, "unlabeled": batch}``."""
        loaders: dict[str, DataLoader] = {}
        lab = self._train_stream(self.labeled, self.batch_size, labeled=True)
        unlab_bs = self.batch_size * self.unlabeled_ratio if self.labeled else self.batch_size
        unl = self._train_stream(self.unlabeled, unlab_bs, labeled=False)
        if lab is not None:
            loaders["labeled"] = lab
        if unl is not None:
            loaders["unlabeled"] = unl
        if not loaders:
            raise ValueError("DepthDataModule: training needs `labeled` and/or `unlabeled` sources")
        return CombinedLoader(loaders, mode=self.mode)

    def _eval_loader(self, sources: list[Dataset] | None, stream: str, *, require_depth: bool) -> DataLoader:
        data = _concat(sources)
        if data is None:
            raise ValueError(f"DepthDataModule: no `{stream}` sources configured")
        safe = SafeDataset(data, EvalTransform(), strict=self.strict, stream=stream)
        collate = functools.partial(collate_samples, require_depth=require_depth, pad=self.pad_eval_batches)
        return self._loader(safe, self.eval_batch_size, shuffle=False, collate=collate, drop_last=False)

    def val_dataloader(self) -> DataLoader:
        """Full-resolution labeled batches (the ``labeled`` dict of the batch contract)."""
        return self._eval_loader(self.val, "val", require_depth=True)

    def test_dataloader(self) -> DataLoader:
        """Full-resolution labeled batches."""
        return self._eval_loader(self.test, "test", require_depth=True)

    def predict_dataloader(self) -> DataLoader:
        """Full-resolution batches; ``meta`` carries ``id`` and ``image_ref`` for writers."""
        return self._eval_loader(self.predict, "predict", require_depth=False)


class _drop_labels:  # noqa: N801 - a tiny callable wrapper, picklable for worker processes
    """Apply a transform, then keep only ``image``, ``meta`` (and ``intrinsics``)."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = self.transform(sample)
        return {k: v for k, v in out.items() if k in ("image", "meta", "intrinsics")}
