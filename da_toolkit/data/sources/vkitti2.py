"""Virtual KITTI 2 (rgb JPEG + 16-bit PNG depth in centimetres)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from da_toolkit.data.io import read_png_uint16
from da_toolkit.data.sources.base import intrinsics_matrix
from da_toolkit.data.sources.paired import Pair, PairedFileSource


class VirtualKITTI2(PairedFileSource):
    """Virtual KITTI 2 frames, metric depth in metres (``png / 100``; 65535 = sky, invalid).

    Layout: ``<Scene>/<variation>/frames/rgb/<Camera_i>/rgb_NNNNN.jpg`` and
    ``.../frames/depth/<Camera_i>/depth_NNNNN.png``; intrinsics are read from
    ``<Scene>/<variation>/intrinsic.txt`` when present (``frame cameraID fx fy cx cy`` rows).

    Args:
        root: folder holding ``Scene01`` ...
        scenes: scene names (default: all).
        variations: variations such as ``clone``, ``fog``, ``rain`` (default: ``("clone",)``).
        cameras: camera folders (default: ``("Camera_0",)``).
        min_depth, max_depth: valid range in metres (defaults 1e-3 and 80).
    """

    def __init__(
        self,
        root: str | Path,
        scenes: list[str] | None = None,
        variations: tuple[str, ...] = ("clone",),
        cameras: tuple[str, ...] = ("Camera_0",),
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
    ) -> None:
        super().__init__("vkitti2", min_depth, max_depth)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Virtual KITTI 2 folder {self.root} does not exist")
        self._k: dict[tuple[str, str, int, int], np.ndarray] = {}
        for scene in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if scenes is not None and scene.name not in scenes:
                continue
            for var in variations:
                self._read_intrinsics(scene / var / "intrinsic.txt", scene.name, var)
                for cam in cameras:
                    for rgb in sorted((scene / var / "frames" / "rgb" / cam).glob("rgb_*.jpg")):
                        num = rgb.stem[len("rgb_") :]
                        depth = scene / var / "frames" / "depth" / cam / f"depth_{num}.png"
                        if depth.is_file():
                            key = (scene.name, var, int(cam.rsplit("_", 1)[-1]), int(num))
                            self.pairs.append(Pair(rgb, depth, f"{scene.name}/{var}/{cam}/{num}", {"key": key}))

    def _read_intrinsics(self, path: Path, scene: str, var: str) -> None:
        if not path.is_file():
            return
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) == 6:
                frame, cam, fx, fy, cx, cy = parts
                self._k[(scene, var, int(cam), int(frame))] = intrinsics_matrix(float(fx), float(fy), float(cx), float(cy))

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        raw = read_png_uint16(pair.depth)
        return raw.astype(np.float32) / np.float32(100.0), (raw > 0) & (raw < 65535)

    def intrinsics(self, pair: Pair, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Pinhole intrinsics (3,3) of ``pair`` at ``image_shape``, or None when unknown."""
        return self._k.get(pair.extra.get("key"))
