"""Colourising depth maps with matplotlib colormaps."""

from __future__ import annotations

import numpy as np


def normalize_for_display(
    depth: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
    invert: bool = False,
) -> np.ndarray:
    """Map a depth/disparity map ``(H,W)`` to ``[0,1]`` (float64).

    ``vmin``/``vmax`` default to the finite min/max of the map; non-finite values become 0.
    ``invert=True`` flips the result (use it for metric depth so that near stays "hot",
    as for disparity where bigger = nearer).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"expected a depth map of shape (H,W), got shape {d.shape}")
    finite = np.isfinite(d)
    lo = float(np.min(d[finite])) if vmin is None and finite.any() else (vmin if vmin is not None else 0.0)
    hi = float(np.max(d[finite])) if vmax is None and finite.any() else (vmax if vmax is not None else 1.0)
    span = hi - lo
    out = (d - lo) / span if span > 0 else np.zeros_like(d)
    out = np.clip(np.where(finite, out, 0.0), 0.0, 1.0)
    return 1.0 - out if invert else out


def colorize(
    depth: np.ndarray,
    cmap: str = "Spectral_r",
    vmin: float | None = None,
    vmax: float | None = None,
    invert: bool = False,
) -> np.ndarray:
    """Colourise ``depth (H,W)`` -> uint8 RGB ``(H,W,3)`` with a matplotlib colormap name."""
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError as exc:
        raise ValueError(f"unknown matplotlib colormap {cmap!r} (e.g. 'Spectral_r', 'inferno')") from exc
    rgba = colormap(normalize_for_display(depth, vmin, vmax, invert), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def side_by_side(image: np.ndarray, vis: np.ndarray, gap: int = 0) -> np.ndarray:
    """Concatenate the input ``image (H,W,3)`` uint8 and ``vis (H,W,3)`` horizontally."""
    if image.shape[:2] != vis.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and visualisation {vis.shape[:2]} sizes differ")
    parts = [image.astype(np.uint8), vis]
    if gap > 0:
        parts.insert(1, np.full((image.shape[0], gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)
