"""Hypersim (tone-mapped JPEG previews + ``depth_meters`` HDF5, converted to planar depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.sources.base import intrinsics_matrix
from da_toolkit.data.sources.paired import Pair, PairedFileSource

#: Focal length in pixels of Hypersim's 1024x768 renders (60 degree horizontal FOV).
HYPERSIM_FOCAL_1024 = 886.81


def range_to_planar(distance: np.ndarray, focal: float) -> np.ndarray:
    """Ray length from the camera centre ``(H, W)`` -> z-depth, pixel centres at ``(W-1)/2, (H-1)/2``."""
    h, w = distance.shape
    x = np.arange(w, dtype=np.float32) - (w - 1) / 2.0
    y = np.arange(h, dtype=np.float32) - (h - 1) / 2.0
    norm = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + focal**2)
    return (distance * (focal / norm)).astype(np.float32)


class Hypersim(PairedFileSource):
    """Hypersim frames, metric z-depth in metres (``depth_kind="metric"``).

    Layout: ``<scene>/images/scene_<cam>_final_preview/frame.NNNN.tonemap.jpg`` and
    ``<scene>/images/scene_<cam>_geometry_hdf5/frame.NNNN.depth_meters.hdf5`` (dataset
    ``"dataset"``: distance along the ray, NaN = no surface). The ray distance is converted to
    planar depth with the focal length ``886.81 * W / 1024``.

    Args:
        root: folder of scene folders (``ai_001_001``...).
        scenes: scene names to keep (default: all).
        min_depth, max_depth: valid range in metres (defaults 1e-3 and 65).
    """

    def __init__(
        self, root: str | Path, scenes: list[str] | None = None, min_depth: float = 1e-3, max_depth: float = 65.0
    ) -> None:
        super().__init__("hypersim", min_depth, max_depth)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Hypersim folder {self.root} does not exist")
        for image in sorted(self.root.glob("*/images/scene_*_final_preview/frame.*.tonemap.jpg")):
            scene = image.parents[2].name
            if scenes is not None and scene not in scenes:
                continue
            cam_dir = image.parent.name[: -len("_final_preview")] + "_geometry_hdf5"
            frame = image.name[: -len(".tonemap.jpg")]
            depth = image.parent.parent / cam_dir / f"{frame}.depth_meters.hdf5"
            if depth.is_file():
                self.pairs.append(Pair(image, depth, f"{scene}/{image.parent.name[:-len('_final_preview')]}/{frame}"))

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        try:
            import h5py  # on first read: listing/resolving sources does not need it

            with h5py.File(pair.depth, "r") as f:
                distance = np.asarray(f["dataset"], dtype=np.float32)
        except (OSError, KeyError) as exc:
            raise SampleReadError(pair.depth, f"cannot read HDF5 dataset 'dataset' ({exc})") from None
        if distance.ndim != 2:
            raise SampleReadError(pair.depth, f"expected a 2-D distance map, got {distance.shape}")
        return range_to_planar(distance, HYPERSIM_FOCAL_1024 * distance.shape[1] / 1024.0), None

    def intrinsics(self, pair: Pair, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Pinhole intrinsics (3,3) of ``pair`` at ``image_shape``, or None when unknown."""
        h, w = image_shape[:2]
        f = HYPERSIM_FOCAL_1024 * w / 1024.0
        return intrinsics_matrix(f, f, (w - 1) / 2.0, (h - 1) / 2.0)
