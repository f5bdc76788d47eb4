"""The student's data module over shard streams: labeled shards + pseudo-label shards at 1:2."""

from __future__ import annotations

import functools
from typing import Any

from torch.utils.data import DataLoader, Dataset

from da_toolkit.data.collate import collate_samples
from da_toolkit.data.datamodule import _drop_labels
from da_toolkit.data.shards.loader import ShardLoader
from da_toolkit.data.shards.stream import ShardStream
from da_toolkit.data.student_datamodule import StudentDataModule
from da_toolkit.data.transforms import TrainTransform


class ShardStudentDataModule(StudentDataModule):
    """``StudentDataModule`` whose training streams may be :class:`ShardStream` s.

    A stream given as one ``ShardStream`` (``ShardedRGBD`` for ``labeled``,
    ``PseudoLabelShards`` for ``pseudo_labeled``, ``ShardedImages`` for ``unlabeled``) is
    loaded by a :class:`ShardLoader`: shards split over ranks and workers, the same training
    transform, skips counted in :attr:`skipped_samples`, and its position saved in Lightning
    checkpoints so that ``--ckpt_path last`` continues mid-epoch. ``batch_size`` labeled and
    ``batch_size * unlabeled_ratio`` pseudo-labeled samples per step (1:2 by default). Other
    streams (map-style sources) behave as in the parent class. Workers are not persistent.

    Args:
        **kwargs: every argument of :class:`~da_toolkit.data.student_datamodule.StudentDataModule`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def _train_stream(self, sources: list[Dataset] | None, batch_size: int, *, labeled: bool) -> DataLoader | None:
        pseudo = not labeled and bool(self.pseudo_labeled)
        chosen = self.pseudo_labeled if pseudo else sources
        if not chosen or not any(isinstance(s, ShardStream) for s in chosen):
            return super()._train_stream(sources, batch_size, labeled=labeled)
        if len(chosen) != 1:
            raise ValueError(
                "ShardStudentDataModule: give one ShardStream per stream (list all shard patterns in its "
                f"`urls`, joined by '::'), got {len(chosen)} sources"
            )
        if batch_size == 0:
            return None
        stream: ShardStream = chosen[0]  # type: ignore[assignment]
        name = "labeled" if labeled else ("pseudo_labeled" if pseudo else "unlabeled")
        transform: Any = TrainTransform(self.crop_size, flip=labeled and self.hflip)
        if not labeled and not pseudo:
            transform = _drop_labels(transform)
        stream.transform = transform
        stream.strict = stream.strict or self.strict
        stream.stream = name
        self._safe[name] = stream  # type: ignore[assignment] - has .skipped like SafeDataset
        collate = functools.partial(collate_samples, require_depth=labeled or pseudo)
        loader = ShardLoader(stream, batch_size=batch_size, collate_fn=collate, drop_last=True,
                             num_workers=self.num_workers, pin_memory=self.pin_memory)
        if len(loader) == 0:
            raise ValueError(f"ShardStudentDataModule: the {name} stream has fewer samples per rank than one batch")
        return loader
