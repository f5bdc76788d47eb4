"""The one image -> depth path: prepare -> batch by shape -> forward -> upsample.

Every entry point runs through these functions: ``DepthModel.infer_image``,
:class:`~da_toolkit.inference.Predictor`, ``da-toolkit predict`` (``DepthPredictionTask``),
pseudo-labelling and evaluation (``predict_tensor``).

* **Input multiple** (:func:`input_multiple`): network input sides are multiples of the model's
  ``input_multiple`` (a ViT's patch size, a CNN's largest reduction, e.g. 32); nothing here
  assumes 14.
* **Network size** (:func:`network_size`): ``input_size=None`` keeps the native size, rounded to
  the nearest multiple; an integer applies the official keep-aspect "lower bound" rule
  (:func:`~da_toolkit.models.preprocess.target_size`) with the size guard ``max_pixels``.
* **Upsampling** (:func:`upsample`): bilinear to the original size with the model's
  ``upsample_align_corners`` (Depth Anything V2's ``infer_image``: ``True``; V1's ``run.py``:
  ``False``).

Outputs keep the model's units: relative disparity (bigger = nearer) or metres.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from da_toolkit.models.preprocess import (
    DEFAULT_MAX_PIXELS,
    normalize,
    prepare_image,
    target_size,
)

__all__ = [
    "ModelFn",
    "align_corners_of",
    "group_by_shape",
    "input_multiple",
    "network_size",
    "predict_rgb",
    "predict_tensor",
    "prepare_rgb",
    "run_prepared",
    "upsample",
]

#: ``(B,3,h,w)`` ImageNet-normalised -> ``(B,h,w)`` disparity or metres
ModelFn = Callable[[torch.Tensor], torch.Tensor]


def input_multiple(model: Any) -> int:
    """The multiple network-input sides must have, taken from the model.

    Order: ``model.input_multiple``, ``model.patch_size``, the encoder's ``patch_size``, the largest
    of the encoder's ``reductions``. Raises ``ValueError`` when none is known.
    """
    for value in (getattr(model, "input_multiple", None), getattr(model, "patch_size", None)):
        if value:
            return int(value)
    encoder = getattr(model, "encoder", None)
    if encoder is not None:
        if getattr(encoder, "patch_size", None):
            return int(encoder.patch_size)
        reductions = getattr(encoder, "reductions", None)
        if reductions:
            return int(max(reductions))
    raise ValueError(
        f"{type(model).__name__}: cannot tell the input multiple (no input_multiple, patch_size or "
        "encoder.reductions attribute)"
    )


def align_corners_of(model: Any) -> bool:
    """The model's upsampling rule (``upsample_align_corners``, default ``True`` = V2's rule)."""
    return bool(getattr(model, "upsample_align_corners", True))


def network_size(
    h: int,
    w: int,
    multiple: int,
    input_size: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Network input ``(h', w')`` for an ``h x w`` image.

    ``input_size=None``: each side rounded to the nearest multiple of ``multiple`` (at least one
    multiple); else the official keep-aspect lower-bound rule. ``max_pixels`` guards both
    (``ValueError`` naming the sizes).
    """
    if multiple < 1:
        raise ValueError(f"network_size: multiple must be >= 1, got {multiple}")
    if input_size is not None:
        return target_size(h, w, input_size, multiple=multiple, max_pixels=max_pixels)
    if h <= 0 or w <= 0:
        raise ValueError(f"network_size: image size must be positive, got {h}x{w}")
    th, tw = max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple)
    if max_pixels is not None and th * tw > max_pixels:
        raise ValueError(
            f"image of {h}x{w} (HxW) would need a {th}x{tw} network input ({th * tw:,} pixels), above "
            f"the limit max_pixels={max_pixels:,}"
        )
    return th, tw


def prepare_rgb(
    rgb: np.ndarray,
    multiple: int,
    input_size: int = 518,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> torch.Tensor:
    """Official preprocessing (OpenCV bicubic, as the official code) of one uint8 ``(H,W,3)`` RGB
    image -> ``(3,h',w')`` float32 ImageNet-normalised, sides multiples of ``multiple``."""
    return prepare_image(rgb, input_size, max_pixels=max_pixels, multiple=multiple)[0]


def upsample(pred: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """Bilinear ``(B,h,w)`` -> ``(B,H,W)`` (units kept); a no-op when the size already matches."""
    if pred.dim() != 3:
        raise ValueError(f"upsample: expected (B,h,w), got shape {tuple(pred.shape)}")
    if tuple(pred.shape[-2:]) == tuple(size):
        return pred
    return F.interpolate(pred[:, None], size=tuple(size), mode="bilinear", align_corners=align_corners)[:, 0]


def group_by_shape(images: Sequence[torch.Tensor]) -> list[list[int]]:
    """Indices of ``images`` grouped by equal shape (first-seen order)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(tuple(im.shape), []).append(i)
    return list(groups.values())


def run_prepared(
    model_fn: ModelFn,
    images: Sequence[torch.Tensor],
    sizes: Sequence[tuple[int, int]],
    align_corners: bool,
    device: torch.device | str | None = None,
    input_dtype: torch.dtype = torch.float32,
) -> list[torch.Tensor]:
    """Forward prepared images (equal shapes stacked into one batch) and upsample each.

    Args:
        model_fn: ``(B,3,h,w)`` normalised -> ``(B,h,w)``.
        images: ``(3,h_i,w_i)`` prepared tensors.
        sizes: original ``(H_i, W_i)`` of each.
        align_corners: the upsampling rule (:func:`align_corners_of`).
        device: where the stacked batch goes (``None``: where the images are).
        input_dtype: the dtype of the stacked batch.

    Returns:
        ``(H_i, W_i)`` float32 tensors in input order (on the model's output device).
    """
    out: list[torch.Tensor | None] = [None] * len(images)
    for idx in group_by_shape(images):
        x = torch.stack([images[i] for i in idx]).to(device=device, dtype=input_dtype)
        pred = model_fn(x)
        if pred.dim() != 3 or pred.shape[0] != len(idx):
            raise ValueError(f"the model returned shape {tuple(pred.shape)} for input {tuple(x.shape)}; expected (B,h,w)")
        pred = pred.float()
        for j, i in enumerate(idx):
            out[i] = upsample(pred[j : j + 1], sizes[i], align_corners)[0]
    return out  # type: ignore[return-value]


def _param(model: Any) -> torch.Tensor | None:
    try:
        return next(model.parameters())
    except (AttributeError, StopIteration):
        return None


def predict_tensor(
    model: Any,
    images: torch.Tensor,
    input_size: int | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    align_corners: bool | None = None,
) -> torch.Tensor:
    """Depth for a batch of same-size images, at their size.

    Args:
        model: a ``DepthModel`` (or anything with its ``forward`` contract and
            :func:`input_multiple` attributes).
        images: ``(B,3,H,W)`` float RGB in ``[0,1]`` (not normalised).
        input_size: ``None`` = native size rounded to the nearest multiples of the model's input
            multiple (bilinear resize, as evaluation during training does); an integer = the
            official keep-aspect lower-bound rule (torch bicubic resize: within ~1e-4 of the
            OpenCV resize of :func:`predict_rgb`).
        max_pixels: size guard on the network input (``None`` disables).
        align_corners: override the model's ``upsample_align_corners``.

    Returns:
        ``(B,H,W)`` float32 relative disparity or metres. Runs in the caller's grad mode, on the
        images' device, in the model's parameter dtype.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"predict_tensor: expected images of shape (B,3,H,W), got {tuple(images.shape)}")
    h, w = int(images.shape[-2]), int(images.shape[-1])
    size = network_size(h, w, input_multiple(model), input_size, max_pixels)
    x = images.float()
    if size != (h, w):
        mode = "bilinear" if input_size is None else "bicubic"
        x = F.interpolate(x, size=size, mode=mode, align_corners=False)
    x = normalize(x)
    param = _param(model)
    if param is not None:
        x = x.to(dtype=param.dtype)
    pred = model(x).float()
    rule = align_corners_of(model) if align_corners is None else align_corners
    return upsample(pred, (h, w), rule)


def predict_rgb(
    model: Any,
    rgb: np.ndarray,
    input_size: int = 518,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    align_corners: bool | None = None,
) -> np.ndarray:
    """Official single-image inference: uint8 ``(H,W,3)`` RGB -> float32 ``(H,W)`` numpy.

    Same path as :class:`~da_toolkit.inference.Predictor` (OpenCV bicubic preprocessing, the
    model's input multiple and upsampling rule); runs on the model's device and dtype, no grad.
    """
    x = prepare_rgb(rgb, input_multiple(model), input_size, max_pixels)
    param = _param(model)
    device = param.device if param is not None else None
    dtype = param.dtype if param is not None else torch.float32
    rule = align_corners_of(model) if align_corners is None else align_corners
    with torch.no_grad():
        (out,) = run_prepared(model, [x], [(int(rgb.shape[0]), int(rgb.shape[1]))], rule, device, dtype)
    return out.cpu().numpy().astype(np.float32, copy=False)
