"""Running a depth network on preprocessed images: precision, grouping by size, upsampling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from da_toolkit.models.preprocess import upsample_prediction

#: precision name -> (autocast dtype or None, weight dtype)
PRECISIONS: dict[str, tuple[torch.dtype | None, torch.dtype]] = {
    "32": (None, torch.float32),
    "bf16-mixed": (torch.bfloat16, torch.float32),
    "16-mixed": (torch.float16, torch.float32),
    "bf16-true": (None, torch.bfloat16),
}

ModelFn = Callable[[torch.Tensor], torch.Tensor]


def check_precision(precision: str) -> str:
    """Validate a precision name (one of :data:`PRECISIONS`)."""
    precision = str(precision)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast for the ``*-mixed`` precisions."""
    dtype, _ = PRECISIONS[check_precision(precision)]
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def group_by_shape(images: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of ``images`` grouped by equal shape (first-seen order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return list(groups.values())


def run_batch(
    model_fn: ModelFn,
    images: Sequence[torch.Tensor],
    sizes: Sequence[tuple[int, int]],
    device: torch.device,
    input_dtype: torch.dtype = torch.float32,
) -> list[np.ndarray]:
    """Predict a list of preprocessed images and upsample each to its original size.

    Args:
        model_fn: ``(B,3,h,w)`` ImageNet-normalised -> ``(B,h,w)`` disparity or metres.
        images: ``(3,h_i,w_i)`` float32 tensors (equal shapes are stacked into one forward).
        sizes: original ``(H_i, W_i)`` of each image.
        device: where the model runs.
        input_dtype: dtype the stacked batch is cast to (bf16 for ``bf16-true`` weights).

    Returns:
        ``(H_i, W_i)`` float32 numpy arrays (bilinear upsampling, ``align_corners=True``).
    """
    out: list[np.ndarray | None] = [None] * len(images)
    for idx in group_by_shape(images):
        x = torch.stack([images[i] for i in idx]).to(device=device, dtype=input_dtype)
        pred = model_fn(x)
        if pred.dim() != 3 or pred.shape[0] != len(idx):
            raise ValueError(f"the model returned shape {tuple(pred.shape)} for input {tuple(x.shape)}; expected (B,h,w)")
        pred = pred.float()
        for j, i in enumerate(idx):
            up = upsample_prediction(pred[j : j + 1], sizes[i])[0]
            out[i] = up.cpu().numpy().astype(np.float32, copy=False)
    return out  # type: ignore[return-value]
