"""``InferenceData``: the LightningDataModule of ``da-toolkit predict``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from da_toolkit.data.io import IMAGE_EXTENSIONS
from da_toolkit.inference.datasets import (
    DoneFilter,
    ImageFileDataset,
    VideoFrameDataset,
    bucket_sampler,
    collate_inference,
)
from da_toolkit.inference.inputs import VIDEO_EXTENSIONS, InputFile, discover_inputs
from da_toolkit.models.inference_core import input_multiple


class InferenceData(pl.LightningDataModule):
    """Images and video frames to predict, preprocessed in DataLoader workers.

    Args:
        path: a file, a folder (searched recursively), a glob pattern (``**`` allowed), or a list
            of them. Video files (``video_extensions``) are read frame by frame.
        batch_size: images per batch; images are grouped by preprocessed size (aspect-ratio buckets).
        num_workers: decoding/preprocessing workers (``None``: up to 2, one per CPU core).
        input_size: lower bound of the network input's shorter side (official rule: aspect kept,
            sides multiples of the model's ``input_multiple``, bicubic); must match how the model
            is meant to run (518 for the released models).
        input_multiple: override of the network-input multiple; ``None`` = taken from the
            model of the run (``trainer.lightning_module.input_multiple``).
        frame_stride: keep every n-th video frame.
        max_frames: stop each video after this many kept frames.
        image_extensions / video_extensions: lower-case suffixes picked up in folders and globs.

    Writers (``da_toolkit.inference.writers``) register a "done" test through
    :meth:`add_done_filter`; items every writer has finished are not even decoded (resume).
    """

    def __init__(
        self,
        path: str | list[str],
        batch_size: int = 4,
        num_workers: int | None = None,
        input_size: int = 518,
        frame_stride: int = 1,
        max_frames: int | None = None,
        image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
        video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
        input_multiple: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if input_size < 1:
            raise ValueError(f"data.input_size must be >= 1, got {input_size}")
        if frame_stride < 1:
            raise ValueError(f"data.frame_stride must be >= 1, got {frame_stride}")
        self.path = path
        self.batch_size = batch_size
        self.num_workers = min(2, os.cpu_count() or 1) if num_workers is None else num_workers
        self.input_size = input_size
        self.frame_stride = frame_stride
        self.max_frames = max_frames
        self.image_extensions = tuple(image_extensions)
        self.video_extensions = tuple(video_extensions)
        self.keep_images = False
        self._done_filters: list[DoneFilter] = []
        self.inputs: list[InputFile] = []
        self.skipped = 0
        if input_multiple is not None and input_multiple < 1:
            raise ValueError(f"data.input_multiple must be >= 1 or null, got {input_multiple}")
        self.input_multiple = input_multiple

    def multiple(self) -> int:
        """The network-input multiple: ``input_multiple`` or the run's model's."""
        if self.input_multiple is not None:
            return self.input_multiple
        trainer = getattr(self, "trainer", None)
        module = getattr(trainer, "lightning_module", None) if trainer is not None else None
        if module is None:
            raise ValueError("InferenceData: no model attached; set data.input_multiple or run it through a Trainer")
        return input_multiple(module)

    def add_done_filter(self, done: DoneFilter) -> None:
        """Register ``done(meta) -> bool``; an item is skipped when every filter says done."""
        self._done_filters.append(done)

    def is_done(self, meta: dict[str, Any]) -> bool:
        """Whether every registered writer already wrote this item (``False`` with no writer)."""
        return bool(self._done_filters) and all(f(meta) for f in self._done_filters)

    def setup(self, stage: str | None = None) -> None:
        """Lightning hook: list the inputs (once)."""
        self.inputs = discover_inputs(self.path, self.image_extensions, self.video_extensions)

    def _loader(self, dataset: Any, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset,
            num_workers=self.num_workers,
            collate_fn=collate_inference,
            persistent_workers=False,
            **kwargs,
        )

    def predict_dataloader(self) -> list[DataLoader]:
        """One loader per input bucket (images of one network input size batch together)."""
        if not self.inputs:
            self.setup("predict")
        # unreadable entries (f.error) go through the image dataset, which reports them per file
        images = [f for f in self.inputs if not f.is_video or f.error]
        videos = [f for f in self.inputs if f.is_video and not f.error]
        todo = [f for f in images if not self.is_done({"id": f.id, "source": str(f.path), "frame": None})]
        self.skipped = len(images) - len(todo)
        videos = [f for f in videos if not self.is_done({"id": f.id, "source": str(f.path), "video": f.id, "frame": None})]
        loaders = []
        if todo:
            ds = ImageFileDataset(todo, self.input_size, self.keep_images, multiple=self.multiple())
            loaders.append(self._loader(ds, batch_sampler=bucket_sampler(ds, self.batch_size)))
        if videos:
            vds = VideoFrameDataset(
                videos,
                self.input_size,
                self.keep_images,
                self.frame_stride,
                self.max_frames,
                done=self.is_done if self._done_filters else None,
                multiple=self.multiple(),
            )
            loaders.append(self._loader(vds, batch_size=self.batch_size))
        if self.skipped:
            print(f"da-toolkit predict: skipping {self.skipped} image(s) whose outputs already exist")
        if not loaders:
            # nothing left to do: an empty loader keeps Lightning happy
            loaders.append(self._loader(ImageFileDataset([], self.input_size, multiple=1), batch_size=1))
        return loaders
