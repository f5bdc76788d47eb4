"""ETH3D high-res multi-view DSLR frames with ground-truth depth as raw float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import read_rgb
from da_toolkit.data.sources.base import make_sample
from da_toolkit.data.sources.paired import Pair, PairedFileSource


def read_raw_float32(path: Path, height: int, width: int) -> np.ndarray:
    """Headerless little-endian float32 ``(height, width)`` row-major (ETH3D depth files)."""
    if not path.is_file():
        raise SampleReadError(path, "file does not exist")
    data = path.read_bytes()
    if len(data) != 4 * height * width:
        raise SampleReadError(path, f"{len(data)} bytes, expected {4 * height * width} for {width}x{height} float32")
    return np.frombuffer(data, "<f4").reshape(height, width).astype(np.float32)


class ETH3D(PairedFileSource):
    """ETH3D scenes: ``<scene>/<image_dir>/DSC_*.JPG`` and ``<scene>/<depth_dir>/DSC_*.JPG``.

    The depth files keep the image's name but hold raw float32 metres at the image's size; the
    size is taken from the image. ``inf`` and 0 are invalid.

    Args:
        root: folder of scene folders.
        image_dir, depth_dir: per-scene sub-paths of images and depth files.
        min_depth, max_depth: valid range in metres (None = unbounded above).
    """

    def __init__(
        self,
        root: str | Path,
        image_dir: str = "images/dslr_images",
        depth_dir: str = "ground_truth_depth/dslr_images",
        min_depth: float = 1e-3,
        max_depth: float | None = None,
    ) -> None:
        super().__init__("eth3d", min_depth, max_depth)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ETH3D folder {self.root} does not exist")
        for scene in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for image in sorted((scene / image_dir).glob("*")):
                depth = scene / depth_dir / image.name
                if image.is_file() and depth.is_file():
                    self.pairs.append(Pair(image, depth, f"{scene.name}/{image.name}"))

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[self._check_index(index)]
        image = read_rgb(pair.image)
        depth = read_raw_float32(pair.depth, *image.shape[:2])
        return make_sample(
            image, source=self.name, item_id=pair.item_id, image_ref={"path": str(pair.image.resolve())},
            depth=depth, depth_kind="metric", where=pair.depth, min_depth=self.min_depth, max_depth=self.max_depth,
        )
