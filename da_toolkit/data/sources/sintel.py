"""MPI-Sintel depth (``training/<pass>/<scene>/frame_NNNN.png`` + ``training/depth/<scene>/frame_NNNN.dpt``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import SINTEL_TAG, read_sintel_dpt
from da_toolkit.data.sources.paired import Pair, PairedFileSource


def read_sintel_cam(path: Path) -> np.ndarray:
    """Intrinsics ``(3, 3)`` from a Sintel ``.cam`` file (tag, 3x3 float64 K, 3x4 float64 extrinsics)."""
    data = path.read_bytes()
    if len(data) < 4 + 9 * 8 or np.frombuffer(data[:4], "<f4")[0] != np.float32(SINTEL_TAG):
        raise SampleReadError(path, "not a Sintel .cam file (expected the PIEH tag and a 3x3 matrix)")
    return np.frombuffer(data[4 : 4 + 72], "<f8").reshape(3, 3).astype(np.float32)


class Sintel(PairedFileSource):
    """MPI-Sintel training frames with ground-truth depth (scene units, treated as metres).

    Args:
        root: the Sintel depth-training root (holding ``training/``).
        render_pass: ``"final"`` (default) or ``"clean"`` images.
        scenes: scene names to keep (default: all).
        min_depth, max_depth: valid range (defaults 1e-3 and 72, the usual evaluation cap).
    """

    def __init__(
        self,
        root: str | Path,
        render_pass: Literal["final", "clean"] = "final",
        scenes: list[str] | None = None,
        min_depth: float = 1e-3,
        max_depth: float = 72.0,
    ) -> None:
        super().__init__("sintel", min_depth, max_depth)
        self.root = Path(root)
        depth_root = self.root / "training" / "depth"
        if not depth_root.is_dir():
            raise FileNotFoundError(f"Sintel depth folder {depth_root} does not exist")
        for dpt in sorted(depth_root.glob("*/*.dpt")):
            scene = dpt.parent.name
            if scenes is not None and scene not in scenes:
                continue
            image = self.root / "training" / render_pass / scene / (dpt.stem + ".png")
            if image.is_file():
                cam = self.root / "training" / "camdata_left" / scene / (dpt.stem + ".cam")
                self.pairs.append(Pair(image, dpt, f"{scene}/{dpt.stem}", {"cam": cam}))

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        return read_sintel_dpt(pair.depth), None

    def intrinsics(self, pair: Pair, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Pinhole intrinsics (3,3) of ``pair`` at ``image_shape``, or None when unknown."""
        cam = pair.extra.get("cam")
        return read_sintel_cam(cam) if cam is not None and cam.is_file() else None
