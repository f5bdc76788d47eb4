"""Official Depth Anything preprocessing (SPEC section 2) and output upsampling.

Pipeline of the official ``infer_image``: RGB uint8 -> float in [0,1] -> resize (keep aspect,
shorter side >= ``input_size``, each side a multiple of 14) with bicubic interpolation ->
ImageNet normalisation -> network -> bilinear upsampling of the prediction to the original size.

Bicubic choice: the official code resizes with ``cv2.resize(..., interpolation=cv2.INTER_CUBIC)``
on the float image. :func:`prepare_image` does the same (OpenCV, ``opencv-python-headless``), so
its result matches the official one up to float rounding. PyTorch's bicubic
(``F.interpolate(mode="bicubic", align_corners=False)``) uses the same cubic kernel (a=-0.75),
sample positions and border replication, but OpenCV quantises sub-pixel positions (1/32 pixel),
so the two differ slightly: measured max |diff| about 4e-5 (480x640 -> 518x686) and 9e-5
(1080x1920 -> 518x924) on random images in [0,1]. Use :func:`resize_images` when a batched
on-device resize matters more than bit-level parity with the official pipeline.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Default limit on the network input's pixels (``h' * w'``) for :func:`target_size`: 50 M
#: pixels, about 255 000 ViT-14 tokens. Normal photos are far below it (a 4K frame at 518 gives
#: 518x924 = 0.48 M); it only refuses absurd aspect ratios such as 10000x10, whose official
#: network input would be 518x518000.
DEFAULT_MAX_PIXELS: int = 50_000_000

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "normalize",
    "target_size",
    "resize_images",
    "prepare_image",
    "upsample_prediction",
]


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalise a batch of RGB images.

    Args:
        x: ``(B,3,H,W)`` (or ``(3,H,W)``) float RGB in ``[0,1]``.

    Returns:
        Same shape, ``(x - mean) / std`` per channel.
    """
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"normalize: expected (B,3,H,W) or (3,H,W) RGB, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise TypeError(f"normalize: expected a float tensor in [0,1], got dtype {x.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x - mean) / std


def _constrain_to_multiple(x: float, multiple: int, min_val: int) -> int:
    # Round to the nearest multiple (numpy's round-half-to-even, as the official code uses
    # np.round); if that falls below the bound, round up instead.
    y = int(np.round(x / multiple) * multiple)
    if y < min_val:
        y = int(math.ceil(x / multiple) * multiple)
    return y


def target_size(
    h: int,
    w: int,
    input_size: int = 518,
    multiple: int = 14,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Network input size ``(h', w')`` for an ``h x w`` image (official "lower bound" rule).

    Keeps the aspect ratio with one common scale so that the shorter side reaches
    ``input_size``; each side is then rounded to the nearest multiple of ``multiple``, or rounded
    up when the nearest multiple falls below ``input_size``.

    Args:
        h: image height in pixels.
        w: image width in pixels.
        input_size: lower bound of the shorter side of the network input (pixels).
        multiple: each output side is a multiple of this (the model's input multiple; the
            default is the official releases' patch size).
        max_pixels: refuse network inputs with more than this many pixels ``h' * w'`` (guard
            against absurd aspect ratios: a 10000x10 image would need 518x518000);
            ``None`` disables the guard. The result is unchanged for every size it accepts.

    Raises:
        ValueError: non-positive sizes, or a network input above ``max_pixels`` (the message
            names the image size, the would-be network size and the limit).
    """
    if h <= 0 or w <= 0:
        raise ValueError(f"target_size: image size must be positive, got {h}x{w}")
    if input_size <= 0 or multiple <= 0:
        raise ValueError(f"target_size: input_size and multiple must be positive, got {input_size}, {multiple}")
    if max_pixels is not None and max_pixels <= 0:
        raise ValueError(f"target_size: max_pixels must be positive or None, got {max_pixels}")
    scale = max(input_size / h, input_size / w)
    th = _constrain_to_multiple(scale * h, multiple, input_size)
    tw = _constrain_to_multiple(scale * w, multiple, input_size)
    if max_pixels is not None and th * tw > max_pixels:
        raise ValueError(
            f"image of {h}x{w} (HxW) would need a {th}x{tw} network input at input_size={input_size} "
            f"({th * tw:,} pixels, {(th // multiple) * (tw // multiple):,} tokens), above the limit "
            f"max_pixels={max_pixels:,}; crop or pad the image to a less extreme aspect ratio, or "
            f"raise max_pixels (None disables the check)"
        )
    return th, tw


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"expected an RGB image as a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H,W,3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB image of dtype uint8, got {rgb.dtype}")


def prepare_image(
    rgb: np.ndarray,
    input_size: int = 518,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    multiple: int = 14,
) -> torch.Tensor:
    """Official preprocessing of one image.

    Args:
        rgb: uint8 numpy ``(H,W,3)`` RGB.
        input_size: lower bound of the shorter side of the network input.
        max_pixels: limit on the network input's pixels, see :func:`target_size`
            (``ValueError`` above it, before any resizing).
        multiple: network-input sides are multiples of this; the default is the official
            releases' patch size. Toolkit code passes the model's ``input_multiple``
            (:mod:`da_toolkit.models.inference_core`).

    Returns:
        ``(1,3,h',w')`` float32 tensor, ImageNet-normalised, ``(h', w') = target_size(H, W)``,
        resized with OpenCV bicubic (``INTER_CUBIC``) exactly as the official code.
    """
    import cv2  # local import: only inference on numpy images needs OpenCV

    _check_rgb(rgb)
    h, w = rgb.shape[:2]
    th, tw = target_size(h, w, input_size, multiple=multiple, max_pixels=max_pixels)
    image = rgb.astype(np.float64) / 255.0
    image = cv2.resize(image, (tw, th), interpolation=cv2.INTER_CUBIC)
    image = (image - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
    image = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    return torch.from_numpy(image)[None]


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Batched torch bicubic resize (not bit-identical to OpenCV, see the module docstring).

    Args:
        x: ``(B,3,H,W)`` float images (any normalisation).
        size: ``(h', w')``.

    Returns:
        ``(B,3,h',w')``.
    """
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def upsample_prediction(
    pred: torch.Tensor, size: tuple[int, int], align_corners: bool = True
) -> torch.Tensor:
    """Bilinearly upsample predictions to the original image size.

    Args:
        pred: ``(B,h',w')`` disparity or metres (units are kept).
        size: ``(H, W)``.
        align_corners: the official V2 ``infer_image`` uses ``True`` (default).

    Returns:
        ``(B,H,W)``, same dtype. Bilinear never overshoots the input range.
    """
    if pred.dim() != 3:
        raise ValueError(f"upsample_prediction: expected (B,h,w), got shape {tuple(pred.shape)}")
    out = F.interpolate(pred[:, None], size=tuple(size), mode="bilinear", align_corners=align_corners)
    return out[:, 0]
