"""Running a depth network on preprocessed images: precision, grouping by size, upsampling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from da_toolkit.models.inference_core import ModelFn, group_by_shape, run_prepared

#: precision name -> (autocast dtype or None, weight dtype)
PRECISIONS: dict[str, tuple[torch.dtype | None, torch.dtype]] = {
    "32": (None, torch.float32),
    "bf16-mixed": (torch.bfloat16, torch.float32),
    "16-mixed": (torch.float16, torch.float32),
    "bf16-true": (None, torch.bfloat16),
}

__all__ = ["PRECISIONS", "ModelFn", "check_precision", "group_by_shape", "precision_context", "run_batch"]


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


def run_batch(
    model_fn: ModelFn,
    images: Sequence[torch.Tensor],
    sizes: Sequence[tuple[int, int]],
    device: torch.device,
    input_dtype: torch.dtype = torch.float32,
    align_corners: bool = True,
) -> list[np.ndarray]:
    """Predict a list of preprocessed images and upsample each to its original size.

    A numpy front of :func:`da_toolkit.models.inference_core.run_prepared` (the one inference core).

    Args:
        model_fn: ``(B,3,h,w)`` ImageNet-normalised -> ``(B,h,w)`` disparity or metres.
        images: ``(3,h_i,w_i)`` float32 tensors (equal shapes are stacked into one forward).
        sizes: original ``(H_i, W_i)`` of each image.
        device: where the model runs.
        input_dtype: dtype the stacked batch is cast to (bf16 for ``bf16-true`` weights).
        align_corners: the model's upsampling rule (``upsample_align_corners``).

    Returns:
        ``(H_i, W_i)`` float32 numpy arrays (bilinear upsampling).
    """
    outs = run_prepared(model_fn, images, sizes, align_corners, device, input_dtype)
    return [o.cpu().numpy().astype(np.float32, copy=False) for o in outs]
