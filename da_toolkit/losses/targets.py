"""Conversion of depth targets into the disparity space the relative losses work in."""

from __future__ import annotations

import torch
from torch import Tensor


def depth_to_normalized_disparity(
    depth: Tensor,
    valid: Tensor,
    sky: Tensor | None = None,
    min_depth: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Metric depth ``(B,H,W)`` in metres -> disparity normalised per image to ``[0, 1]``.

    ``disparity = 1 / depth`` on the valid pixels with ``depth > min_depth``; each image is then
    divided by its largest valid disparity, so the nearest valid pixel is 1 and values lie in
    ``(0, 1]``. Scale-only normalisation keeps ``0`` free for the sky: pixels flagged in ``sky``
    (bool ``(B,H,W)``, optional) get disparity 0 and become valid (SPEC 3: sky = disparity 0).
    Other invalid pixels get 0 and stay invalid.

    Returns:
        ``(disparity (B,H,W) float, valid (B,H,W) bool)``.
    """
    if depth.dim() != 3:
        raise ValueError(f"depth_to_normalized_disparity: depth must be (B,H,W), got {tuple(depth.shape)}")
    if valid.shape != depth.shape or valid.dtype != torch.bool:
        raise ValueError(
            "depth_to_normalized_disparity: valid must be a bool tensor of the shape of depth "
            f"{tuple(depth.shape)}, got {tuple(valid.shape)} {valid.dtype}"
        )
    ok = valid & torch.isfinite(depth) & (depth > min_depth)
    disp = torch.where(ok, 1.0 / depth.clamp_min(min_depth), torch.zeros_like(depth))
    peak = disp.flatten(1).amax(dim=1).clamp_min(torch.finfo(disp.dtype).tiny)[:, None, None]
    disp = disp / peak
    if sky is None:
        return disp, ok
    if sky.shape != depth.shape or sky.dtype != torch.bool:
        raise ValueError(
            "depth_to_normalized_disparity: sky must be a bool tensor of the shape of depth "
            f"{tuple(depth.shape)}, got {tuple(sky.shape)} {sky.dtype}"
        )
    disp = torch.where(sky, torch.zeros_like(disp), disp)
    return disp, ok | sky
