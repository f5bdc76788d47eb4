"""Datasets feeding inference: decoding + official preprocessing (in DataLoader workers).

A sample is a dict ``{"image": (3,h',w') float32 ImageNet-normalised | None, "meta": dict,
"raw": (H,W,3) uint8 | None, "error": str | None}``; :func:`collate_inference` keeps images as a
list (sizes may differ) and the runner stacks equal sizes. ``meta["size"]`` is the original
``(H, W)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    Dataset,
    IterableDataset,
    Sampler,
    SequentialSampler,
    get_worker_info,
)

from da_toolkit.inference.inputs import InputFile
from da_toolkit.models.inference_core import network_size, prepare_rgb

Sample = dict[str, Any]
DoneFilter = Callable[[dict[str, Any]], bool]
ImageLike = np.ndarray | str | os.PathLike


def make_sample(rgb: np.ndarray, meta: dict[str, Any], input_size: int, keep_image: bool, multiple: int) -> Sample:
    """Preprocess one RGB uint8 image into a sample (see the module docstring); network-input
    sides are multiples of ``multiple`` (the model's ``input_multiple``)."""
    meta = {**meta, "size": (int(rgb.shape[0]), int(rgb.shape[1]))}
    return {
        "image": prepare_rgb(rgb, multiple, input_size),
        "meta": meta,
        "raw": rgb if keep_image else None,
        "error": None,
    }


def error_sample(meta: dict[str, Any], exc: BaseException) -> Sample:
    """A sample standing for an input that could not be read."""
    return {"image": None, "meta": meta, "raw": None, "error": f"{type(exc).__name__}: {exc}"}


def collate_inference(samples: Sequence[Sample]) -> dict[str, list[Any]]:
    """Batch samples as lists: ``images``, ``meta``, ``raw``, ``error``."""
    return {
        "images": [s["image"] for s in samples],
        "meta": [s["meta"] for s in samples],
        "raw": [s["raw"] for s in samples],
        "error": [s["error"] for s in samples],
    }


def bucket_batches(keys: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Group indices with equal ``keys`` (e.g. preprocessed sizes) into batches of ``batch_size``.

    Buckets keep the order in which their key first appears, and indices keep their order
    inside a bucket.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    buckets: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        buckets.setdefault(k, []).append(i)
    return [idx[j : j + batch_size] for idx in buckets.values() for j in range(0, len(idx), batch_size)]


class BucketBatchSampler(BatchSampler):
    """Batches of indices drawn from ``sampler`` that share a bucket key (preprocessed size).

    A ``torch.utils.data.BatchSampler`` so that Lightning can swap ``sampler`` (e.g. for a
    ``DistributedSampler`` on several devices); ``keys[i]`` is the key of dataset index ``i``.
    """

    def __init__(self, sampler: Sampler[int] | Sequence[int], batch_size: int, drop_last: bool = False, keys: Sequence[Hashable] = ()) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.keys = list(keys)

    def _batches(self) -> list[list[int]]:
        indices = list(self.sampler)
        groups = bucket_batches([self.keys[i] for i in indices], self.batch_size)
        batches = [[indices[j] for j in g] for g in groups]
        return [b for b in batches if len(b) == self.batch_size] if self.drop_last else batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


def header_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` of an image file from its header (EXIF rotation applied), or ``None`` if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - the decode step reports the error for this file
        return None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def _read_rgb(path: Path) -> np.ndarray:
    from da_toolkit.data.io import read_rgb

    return read_rgb(path)


def bucket_sampler(dataset: Any, batch_size: int) -> BucketBatchSampler:
    """A sequential :class:`BucketBatchSampler` over a dataset with ``bucket_keys()``."""
    return BucketBatchSampler(SequentialSampler(range(len(dataset))), batch_size, False, dataset.bucket_keys())


class ImageFileDataset(Dataset):
    """Image files -> samples; a file that cannot be decoded gives an error sample."""

    def __init__(
        self, files: Sequence[InputFile], input_size: int, keep_images: bool = False, *, multiple: int
    ) -> None:
        self.files = list(files)
        self.input_size = input_size
        self.keep_images = keep_images
        self.multiple = multiple

    def __len__(self) -> int:
        return len(self.files)

    def meta(self, i: int) -> dict[str, Any]:
        """The ``meta`` of item ``i`` (``id``, ``source`` file, ``frame``)."""
        f = self.files[i]
        return {"id": f.id, "source": str(f.path), "frame": None}

    def bucket_keys(self) -> list[Hashable]:
        """Preprocessed size of each file (from headers); unreadable files share key ``None``."""
        return [
            None if f.error else _bucket_key(header_size(f.path), self.input_size, self.multiple) for f in self.files
        ]

    def __getitem__(self, i: int) -> Sample:
        meta = self.meta(i)
        if self.files[i].error is not None:  # never opened: a FIFO would block, a link loop fail
            return {"image": None, "meta": meta, "raw": None, "error": self.files[i].error}
        try:
            return make_sample(_read_rgb(self.files[i].path), meta, self.input_size, self.keep_images, self.multiple)
        except Exception as exc:  # noqa: BLE001 - reported per file, the run continues
            return error_sample(meta, exc)


def _bucket_key(size: tuple[int, int] | None, input_size: int, multiple: int) -> Hashable:
    """Network input size of an image of ``size`` (``None``: unknown, or refused by the size guard,
    in which case ``__getitem__`` reports the item's error and the run goes on)."""
    if size is None:
        return None
    try:
        return network_size(*size, multiple, input_size)
    except ValueError:
        return None


class ImageListDataset(Dataset):
    """A list of RGB uint8 ``(H,W,3)`` arrays and/or image paths -> samples (decoded in workers)."""

    def __init__(self, images: Sequence[ImageLike], input_size: int, *, multiple: int) -> None:
        self.images = list(images)
        self.input_size = input_size
        self.multiple = multiple

    def __len__(self) -> int:
        return len(self.images)

    def bucket_keys(self) -> list[Any]:
        """The batching key of each item (its network input size), in item order."""
        keys: list[Any] = []
        for im in self.images:
            if isinstance(im, np.ndarray):
                keys.append(_bucket_key(im.shape[:2] if im.ndim == 3 else None, self.input_size, self.multiple))
            else:
                keys.append(_bucket_key(header_size(Path(im)), self.input_size, self.multiple))
        return keys

    def __getitem__(self, i: int) -> Sample:
        im = self.images[i]
        is_array = isinstance(im, np.ndarray)
        meta = {"id": f"{i:06d}", "source": f"<array {i}>" if is_array else str(im), "frame": None, "index": i}
        try:
            if not is_array:
                im = _read_rgb(Path(im))
            return make_sample(im, meta, self.input_size, False, self.multiple)
        except Exception as exc:  # noqa: BLE001 - reported per item by predict_items
            return error_sample(meta, exc)


class VideoFrameDataset(IterableDataset):
    """Frames of video files, decoded sequentially with ffmpeg (``imageio-ffmpeg``).

    Each DataLoader worker (and each distributed rank) takes whole videos, so frames of one video
    stay in order. Frames for
    which ``done(meta)`` is true are skipped (resume); ``frame_stride`` keeps every n-th frame,
    ``max_frames`` stops early. Frame metas carry ``video`` (id), ``frame`` (index), ``fps``.
    """

    def __init__(
        self,
        files: Sequence[InputFile],
        input_size: int,
        keep_images: bool = False,
        frame_stride: int = 1,
        max_frames: int | None = None,
        done: DoneFilter | None = None,
        *,
        multiple: int,
    ) -> None:
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
        self.files = list(files)
        self.input_size = input_size
        self.keep_images = keep_images
        self.frame_stride = frame_stride
        self.max_frames = max_frames
        self.done = done
        self.multiple = multiple

    def __iter__(self) -> Iterator[Sample]:
        from da_toolkit.inference.video import iter_video_frames

        files = self.files
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # one rank per video
            files = files[torch.distributed.get_rank() :: torch.distributed.get_world_size()]
        info = get_worker_info()
        files = files if info is None else files[info.id :: info.num_workers]
        for f in files:
            base = {"id": f.id, "source": str(f.path), "video": f.id}
            try:
                fps, frames = iter_video_frames(f.path)
                for index, rgb in enumerate(frames):
                    if index % self.frame_stride:
                        continue
                    if self.max_frames is not None and index // self.frame_stride >= self.max_frames:
                        break
                    meta = {**base, "frame": index, "fps": fps / self.frame_stride}
                    if self.done is not None and self.done(meta):
                        continue
                    yield make_sample(rgb, meta, self.input_size, self.keep_images, self.multiple)
            except Exception as exc:  # noqa: BLE001 - one broken video must not stop the run
                yield error_sample({**base, "frame": None}, exc)

