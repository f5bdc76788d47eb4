"""Per-sample transforms: numpy sample dict -> tensors, resize/crop/flip for training.

Geometry changes keep ``intrinsics`` consistent (pixel centres at integer coordinates): a
resize by ``s`` maps ``c -> (c + 0.5) * s - 0.5`` and ``f -> f * s``; a crop shifts ``c``; a
horizontal flip maps ``cx -> W - 1 - cx``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def to_tensors(sample: dict[str, Any]) -> dict[str, Any]:
    """Sample of numpy arrays -> ``image`` float32 ``(3, H, W)`` in [0, 1], ``depth`` float32
    ``(H, W)``, ``valid`` bool ``(H, W)``, ``seg`` int64 ``(H, W)``, ``intrinsics`` float32 ``(3, 3)``;
    ``depth_kind`` and ``meta`` (copied) pass through."""
    image = torch.from_numpy(np.require(sample["image"], requirements=["C", "W"])).permute(2, 0, 1).float().div_(255.0)
    out: dict[str, Any] = {"image": image, "meta": dict(sample["meta"])}
    if "depth" in sample:
        out["depth"] = torch.from_numpy(np.require(sample["depth"], np.float32, ["C", "W"]))
        out["valid"] = torch.from_numpy(np.require(sample["valid"], bool, ["C", "W"]))
        out["depth_kind"] = sample["depth_kind"]
    if "seg" in sample:
        out["seg"] = torch.from_numpy(np.require(sample["seg"], np.int64, ["C", "W"]))
    if "intrinsics" in sample:
        out["intrinsics"] = torch.as_tensor(sample["intrinsics"], dtype=torch.float32).clone()
    return out


def resize_shorter_side(item: dict[str, Any], size: int) -> dict[str, Any]:
    """Resize so that the shorter side is ``size`` (aspect kept; the longer side rounds, >= size).

    Image: bilinear with antialiasing. Depth, valid and seg: nearest (never mixes valid and
    invalid values, keeps sparse ground truth sparse).
    """
    h, w = item["image"].shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) == (h, w):
        return item
    out = dict(item)
    out["image"] = F.interpolate(item["image"][None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0].clamp_(0, 1)
    for key in ("depth", "valid", "seg"):
        if key in item:
            x = item[key][None, None].float() if key != "depth" else item[key][None, None]
            y = F.interpolate(x, size=(nh, nw), mode="nearest-exact")[0, 0]
            out[key] = y if key == "depth" else (y > 0.5 if key == "valid" else y.round().long())
    if "intrinsics" in item:
        k = item["intrinsics"].clone()
        sx, sy = nw / w, nh / h
        k[0, 0] *= sx
        k[1, 1] *= sy
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        out["intrinsics"] = k
    return out


def crop(item: dict[str, Any], top: int, left: int, height: int, width: int) -> dict[str, Any]:
    """Crop every map to ``[top:top+height, left:left+width]`` and shift the principal point."""
    out = dict(item)
    out["image"] = item["image"][:, top : top + height, left : left + width]
    for key in ("depth", "valid", "seg"):
        if key in item:
            out[key] = item[key][top : top + height, left : left + width]
    if "intrinsics" in item:
        k = item["intrinsics"].clone()
        k[0, 2] -= left
        k[1, 2] -= top
        out["intrinsics"] = k
    return out


def hflip(item: dict[str, Any]) -> dict[str, Any]:
    """Mirror every map left-right; ``cx -> W - 1 - cx``."""
    out = dict(item)
    out["image"] = item["image"].flip(-1)
    for key in ("depth", "valid", "seg"):
        if key in item:
            out[key] = item[key].flip(-1)
    if "intrinsics" in item:
        k = item["intrinsics"].clone()
        k[0, 2] = item["image"].shape[-1] - 1 - k[0, 2]
        out["intrinsics"] = k
    return out


class TrainTransform:
    """Training geometry: resize the shorter side to ``crop_size``, random square crop, random flip.

    Args:
        crop_size: side of the square crop in pixels (518 in the papers).
        flip: horizontal flip with probability 0.5 (labeled stream only, per the papers).
        generator: torch RNG for crop offsets and flips (default: the global/worker RNG).
    """

    def __init__(self, crop_size: int, flip: bool, generator: torch.Generator | None = None) -> None:
        if crop_size < 1:
            raise ValueError(f"crop_size={crop_size}: expected >= 1")
        self.crop_size = int(crop_size)
        self.flip = flip
        self.generator = generator

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Resize the shorter side to the crop size, random-crop a square, maybe flip; tensors out."""
        item = resize_shorter_side(to_tensors(sample), self.crop_size)
        h, w = item["image"].shape[-2:]
        c = self.crop_size
        top = int(torch.randint(0, h - c + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, w - c + 1, (1,), generator=self.generator))
        item = crop(item, top, left, c, c)
        if self.flip and bool(torch.rand((), generator=self.generator) < 0.5):
            item = hflip(item)
        return item


class EvalTransform:
    """Evaluation: tensors at the original resolution (metrics at ground-truth size)."""

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        """The sample as tensors at its original resolution."""
        return to_tensors(sample)
