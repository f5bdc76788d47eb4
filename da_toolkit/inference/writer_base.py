"""Base class of prediction writers: per-item files, resumable, atomic, failure-tolerant."""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from da_toolkit.inference.items import PredictionItem, output_path

#: where writers without their own ``output_dir`` write before a trainer gives them its folder
DEFAULT_OUTPUT_DIR = "predictions"


class DepthWriter(BasePredictionWriter):
    """Base class: per-item files ``output_dir/<id><suffix>``, resumable, atomic.

    ``output_dir=None`` (the default) writes into the run's folder: the trainer's
    ``default_root_dir``, which ``da-toolkit predict --output_dir DIR`` sets (default
    ``predictions``), so one option moves everything a run writes. An own ``output_dir`` outside
    that folder is kept, with a warning naming both.

    Subclasses implement :meth:`write_item`. A failure on one item is reported (warning naming
    the source file) and recorded in :attr:`failures`; the run continues.
    """

    #: whether this writer needs the input image in each item
    needs_image: bool = False

    def __init__(self, output_dir: str | None = None, suffix: str = ".npy", overwrite: bool = False) -> None:
        super().__init__(write_interval="batch")
        if not suffix:
            raise ValueError(f"{type(self).__name__}: suffix must not be empty")
        self._own_output_dir = None if output_dir is None else Path(output_dir)
        self._run_dir = Path(DEFAULT_OUTPUT_DIR)
        self.suffix = suffix
        self.overwrite = overwrite
        self.failures: list[tuple[str, str]] = []
        self.written = 0

    @property
    def output_dir(self) -> Path:
        """The folder this writer writes into (its own ``output_dir``, else the run's folder)."""
        return self._own_output_dir if self._own_output_dir is not None else self._run_dir

    def use_run_dir(self, run_dir: str | Path) -> None:
        """Take ``run_dir`` as the run's folder (the trainer's ``default_root_dir``); warns when the
        writer's own ``output_dir`` lies outside it."""
        self._run_dir = Path(run_dir)
        own = self._own_output_dir
        if own is not None and not own.resolve().is_relative_to(self._run_dir.resolve()):
            warnings.warn(f"{type(self).__name__}: writes to its own output_dir {own}, outside the run's "
                          f"folder {self._run_dir} (--output_dir); drop its output_dir to write there",
                          UserWarning, stacklevel=2)

    def output_path(self, meta: dict[str, Any]) -> Path:
        """The file written for an item with this ``meta``."""
        return output_path(self.output_dir, meta, self.suffix)

    def is_done(self, meta: dict[str, Any]) -> bool:
        """Whether the item's output already exists (and will be skipped)."""
        return not self.overwrite and self.output_path(meta).exists()

    @abstractmethod
    def write_item(self, item: PredictionItem) -> None:
        """Write one successful item (``item.depth`` is not ``None``)."""

    def write_items(self, items: Sequence[PredictionItem]) -> None:
        """Write every successful, unfinished item; failures are reported and skipped."""
        for item in items:
            if item.depth is None or item.error is not None or self.is_done(item.meta):
                continue
            try:
                self.write_item(item)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the run
                source = item.meta.get("source", item.meta.get("id"))
                msg = f"{type(exc).__name__}: {exc}"
                self.failures.append((str(source), msg))
                warnings.warn(f"{type(self).__name__}: could not write output for {source}: {msg}", stacklevel=2)

    # Lightning hooks -------------------------------------------------------------------------
    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        """Lightning hook: reset the counts and failures of this run."""
        self.failures.clear()
        self.written = 0

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Lightning hook: write into the run's folder (unless given one), let the data module skip
        finished items (unless overwrite) and keep images if needed."""
        self.use_run_dir(trainer.default_root_dir)
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "add_done_filter") and not self.overwrite:
            dm.add_done_filter(self.is_done)
        if dm is not None and self.needs_image and hasattr(dm, "keep_images"):
            dm.keep_images = True

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Write every item of the batch (failures recorded per item, the run continues)."""
        self.write_items(prediction)
