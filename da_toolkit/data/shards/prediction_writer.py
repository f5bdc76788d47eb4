"""Lightning prediction writer: pseudo-label predictions -> per-rank pseudo-label shards.

Drop-in for ``da_toolkit.tasks.pseudo_label.PseudoLabelStoreWriter`` (same prediction items:
``{"id", "image_ref", "disparity": float (H, W)}``, plus an optional ``"image"``, uint8
``(H, W, 3)`` or encoded bytes of format ``"image_format"``, stored in the shard). Rank ``r`` writes ``rank<r>-NNNNNN.tar`` under ``root``
(see :mod:`da_toolkit.data.shards.pseudo`); :func:`shard_store_done_ids` gives the ids to skip
on resume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter, read_store_indexes


def shard_store_done_ids(root: str, storage_options: Mapping[str, Any] | None = None) -> set[str]:
    """Ids in the finished shards of every writer under ``root`` (empty for a new store)."""
    try:
        indexes = read_store_indexes(root, storage_options)
    except FileNotFoundError:
        return set()
    return {i for index in indexes.values() for entry in index["shardlist"] for i in entry.get("ids", [])}


class PseudoLabelShardCallback(BasePredictionWriter):
    """Writes each rank's pseudo-label predictions as shards (``write_interval="batch"``).

    Args:
        root: store folder or URL.
        settings: extra settings recorded by every writer (the task's ``settings_base`` is added).
        maxcount: items per shard (the unit of resumption).
        encoding: ``float16z`` (default) or ``png16``.
        zlib_level: compression level of ``float16z`` (see ``PseudoLabelShardWriter``).
        storage_options: fsspec options of ``root``.
    """

    def __init__(
        self,
        root: str,
        settings: dict[str, Any] | None = None,
        maxcount: int = 1000,
        encoding: str = "float16z",
        zlib_level: int = 6,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(write_interval="batch")
        self.root, self.settings, self.maxcount, self.encoding = root, dict(settings or {}), maxcount, encoding
        self.zlib_level = zlib_level
        self.storage_options = dict(storage_options or {})
        self._writer: PseudoLabelShardWriter | None = None
        self.written = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: open this rank's shard writer."""
        if stage != "predict" or self._writer is not None:
            return
        settings = {**getattr(pl_module, "settings_base", {}), **self.settings}
        self._writer = PseudoLabelShardWriter(
            self.root, f"rank{trainer.global_rank:03d}", str(getattr(pl_module, "teacher_hash", "unknown")),
            settings, maxcount=self.maxcount, encoding=self.encoding, zlib_level=self.zlib_level,
            storage_options=self.storage_options,
        )

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        """Write the batch's pseudo-labels into this rank's shards."""
        assert self._writer is not None
        for item in prediction:
            if self._writer.is_done(item["id"]):  # exactly once, even if an item came twice
                continue
            self._writer.write(item["id"], item["image_ref"], np.asarray(item["disparity"], dtype=np.float32),
                               image=item.get("image"), image_format=item.get("image_format"))
            self.written += 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: finish this rank's last shard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
