"""Convert labeled depth targets to normalised disparity (what the relative-depth losses use)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def to_disparity(depth: torch.Tensor, valid: torch.Tensor, kinds: Sequence[str], eps: float = 1e-6) -> torch.Tensor:
    """Per image, depth ``(B,H,W)`` -> disparity normalised to [0, 1] over its valid pixels.

    ``metric`` depth is inverted (``1 / depth``); ``disparity`` and ``relative`` targets are used
    as they are. Each image is then min-max normalised over its valid pixels; invalid pixels
    (sky included) are 0. Images with fewer than two distinct valid values give 0 everywhere.
    """
    if depth.shape != valid.shape or depth.ndim != 3 or len(kinds) != depth.shape[0]:
        raise ValueError(f"to_disparity: depth {tuple(depth.shape)}, valid {tuple(valid.shape)}, {len(kinds)} kinds")
    out = torch.zeros_like(depth)
    for i, kind in enumerate(kinds):
        m = valid[i] & torch.isfinite(depth[i])
        if kind == "metric":
            m &= depth[i] > eps
            disp = torch.where(m, 1.0 / depth[i].clamp_min(eps), torch.zeros_like(depth[i]))
        elif kind in ("disparity", "relative"):
            disp = torch.where(m, depth[i], torch.zeros_like(depth[i]))
        else:
            raise ValueError(f"unknown depth_kind {kind!r}; expected metric, disparity or relative")
        if m.sum() < 2:
            continue
        lo, hi = disp[m].min(), disp[m].max()
        if hi - lo <= eps:
            continue
        out[i] = torch.where(m, (disp - lo) / (hi - lo), torch.zeros_like(disp))
    return out
