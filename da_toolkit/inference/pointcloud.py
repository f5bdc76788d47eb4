"""Point clouds from depth maps and pinhole intrinsics, written as binary PLY."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from da_toolkit.data.io import atomic_path


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the image the depth map belongs to.

    Pixel centres are at integer coordinates (OpenCV convention): column ``u``, row ``v``.
    ``cx``/``cy`` default to the image centre ``((W-1)/2, (H-1)/2)``.
    """

    fx: float
    fy: float
    cx: float | None = None
    cy: float | None = None

    def matrix(self, height: int, width: int) -> np.ndarray:
        """The 3x3 camera matrix for an image of ``height`` x ``width`` pixels."""
        cx = (width - 1) / 2.0 if self.cx is None else self.cx
        cy = (height - 1) / 2.0 if self.cy is None else self.cy
        return np.array([[self.fx, 0.0, cx], [0.0, self.fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    @classmethod
    def from_fov(cls, hfov_deg: float, width: int) -> Intrinsics:
        """Square pixels and a horizontal field of view in degrees."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
        f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
        return cls(fx=float(f), fy=float(f))


def disparity_to_depth(disparity: np.ndarray, median_depth: float = 1.0, eps: float = 1e-6) -> np.ndarray:
    """Relative disparity ``(H,W)`` -> depth ``(H,W)`` under a stated assumption.

    Assumption: the unknown shift of the affine-invariant disparity is 0, so depth = k / disparity;
    the unknown scale ``k`` is chosen so that the median depth is ``median_depth`` (arbitrary
    units). Pixels with disparity <= ``eps`` (sky / infinitely far) become NaN.
    """
    d = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(d) & (d > eps)
    depth = np.full(d.shape, np.nan)
    depth[valid] = 1.0 / d[valid]
    if valid.any():
        depth *= median_depth / np.median(depth[valid])
    return depth


def backproject(depth: np.ndarray, K: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Back-project ``depth (H,W)`` (z along the optical axis) with camera matrix ``K (3,3)``.

    Returns ``points (N,3)`` float32 ``(X, Y, Z)`` in the camera frame (x right, y down, z forward,
    same units as ``depth``) and ``pixels (N,2)`` int ``(v, u)`` of the finite, positive pixels,
    taking every ``stride``-th row and column.
    """
    if depth.ndim != 2:
        raise ValueError(f"expected a depth map of shape (H,W), got shape {depth.shape}")
    vs, us = np.mgrid[0 : depth.shape[0] : stride, 0 : depth.shape[1] : stride]
    z = depth[vs, us].astype(np.float64)
    keep = np.isfinite(z) & (z > 0)
    us, vs, z = us[keep], vs[keep], z[keep]
    x = (us - K[0, 2]) * z / K[0, 0]
    y = (vs - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1).astype(np.float32), np.stack([vs, us], axis=1)


def write_ply(
    path: str | os.PathLike[str],
    points: np.ndarray,
    colors: np.ndarray | None = None,
    comments: tuple[str, ...] = (),
) -> None:
    """Write ``points (N,3)`` float32 and optional ``colors (N,3)`` uint8 as binary little-endian PLY.

    Each of ``comments`` becomes one ``comment`` line of the header (whitespace runs collapsed,
    characters outside ASCII replaced by ``?``).
    """
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colors is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    rec = np.empty(len(points), dtype=fields)
    rec["x"], rec["y"], rec["z"] = points[:, 0], points[:, 1], points[:, 2]
    if colors is not None:
        rec["red"], rec["green"], rec["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {' '.join(str(c).split())}" for c in comments]  # one line each
    header += [f"element vertex {len(points)}"]
    header += ["property float x", "property float y", "property float z"]
    if colors is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += ["end_header"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii", errors="replace"))  # PLY headers are ASCII
        f.write(rec.tobytes())
