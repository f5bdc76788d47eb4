"""Standard evaluation crops, as bool masks (True = evaluated)."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: ``fn(height, width, device)`` -> bool ``(H,W)`` mask of the evaluated region.
CropFn = Callable[[int, int, torch.device], torch.Tensor]


def fractional_crop(
    height: int, width: int, device: torch.device, rows: tuple[float, float], cols: tuple[float, float]
) -> torch.Tensor:
    """True on ``[int(rows[0]*H), int(rows[1]*H)) x [int(cols[0]*W), int(cols[1]*W))``."""
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[int(rows[0] * height) : int(rows[1] * height), int(cols[0] * width) : int(cols[1] * width)] = True
    return mask


def garg_crop(height: int, width: int, device: torch.device) -> torch.Tensor:
    """KITTI Garg crop: rows 0.40810811-0.99189189 H, cols 0.03594771-0.96405229 W."""
    return fractional_crop(height, width, device, (0.40810811, 0.99189189), (0.03594771, 0.96405229))


def eigen_crop(height: int, width: int, device: torch.device) -> torch.Tensor:
    """KITTI Eigen crop: rows 0.3324324-0.91351351 H, cols 0.0359477-0.96405229 W."""
    return fractional_crop(height, width, device, (0.3324324, 0.91351351), (0.0359477, 0.96405229))


def nyu_crop(height: int, width: int, device: torch.device) -> torch.Tensor:
    """NYUv2 standard eval crop: rows 45:471, cols 41:601 of a 480x640 map (scaled to other
    sizes proportionally, rounding down: rows 45H/480-471H/480, cols 41W/640-601W/640)."""
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[(45 * height) // 480 : (471 * height) // 480, (41 * width) // 640 : (601 * width) // 640] = True
    return mask


#: Crop name -> mask function (the ``crop`` option of ``DepthMetrics``).
EVAL_CROPS: dict[str, CropFn] = {"garg": garg_crop, "eigen": eigen_crop, "nyu": nyu_crop}
