"""Data module of the student: the unlabeled stream keeps its pseudo-labels.

:class:`~da_toolkit.data.datamodule.DepthDataModule` drops any depth an ``unlabeled`` source
carries. The student trained from an offline pseudo-label store needs the teacher's disparity with
each (randomly cropped) unlabeled image, so :class:`StudentDataModule` adds a ``pseudo_labeled``
stream: sources such as ``PseudoLabelSource`` whose samples keep ``depth`` (relative disparity)
and ``valid`` through the same resize + crop (no flip), delivered as ``batch["unlabeled"]``.
"""

from __future__ import annotations

import functools
from typing import Any

from torch.utils.data import ConcatDataset, DataLoader, Dataset

from da_toolkit.data.datamodule import DepthDataModule


class StudentDataModule(DepthDataModule):
    """``DepthDataModule`` whose unlabeled stream can carry offline pseudo-labels.

    Args:
        pseudo_labeled: sources with ``depth`` (e.g. ``PseudoLabelSource(root)``); their samples
            form ``batch["unlabeled"]`` with ``image``, ``depth``, ``valid``, ``depth_kind`` and
            ``meta`` (``batch_size * unlabeled_ratio`` per step). Mutually exclusive with
            ``unlabeled`` (plain images, for an online teacher).
        **kwargs: every argument of :class:`~da_toolkit.data.datamodule.DepthDataModule`.
    """

    def __init__(self, pseudo_labeled: list[Dataset] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if pseudo_labeled and self.unlabeled:
            raise ValueError("StudentDataModule: give `pseudo_labeled` (offline store) or `unlabeled` "
                             "(online teacher), not both")
        self.pseudo_labeled = pseudo_labeled

    def _train_stream(self, sources: list[Dataset] | None, batch_size: int, *, labeled: bool) -> DataLoader | None:
        if labeled or not self.pseudo_labeled:
            return super()._train_stream(sources, batch_size, labeled=labeled)
        from da_toolkit.data.collate import collate_samples
        from da_toolkit.data.robust import SafeDataset
        from da_toolkit.data.transforms import TrainTransform

        data = self.pseudo_labeled[0] if len(self.pseudo_labeled) == 1 else ConcatDataset(self.pseudo_labeled)
        if len(data) == 0:  # type: ignore[arg-type]
            raise ValueError("StudentDataModule: the pseudo_labeled stream is empty (is the store complete?)")
        safe = SafeDataset(data, TrainTransform(self.crop_size, flip=False), strict=self.strict,
                           stream="pseudo_labeled")
        collate = functools.partial(collate_samples, require_depth=True)
        return self._loader(safe, batch_size, shuffle=True, collate=collate, drop_last=len(safe) >= batch_size)
