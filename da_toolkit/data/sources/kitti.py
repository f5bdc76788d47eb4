"""KITTI depth (Eigen split lists; annotated/projected LiDAR ground truth as 16-bit PNG / 256)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from da_toolkit.data.io import read_png_uint16
from da_toolkit.data.sources.paired import Pair, PairedFileSource


def parse_split_line(line: str) -> tuple[str, str | None, float | None]:
    """One split line -> (rgb relative path, depth relative path or None, focal or None).

    Two formats are understood:

    * Eigen / monodepth2: ``2011_09_26/2011_09_26_drive_0002_sync 69 l`` (folder, frame, side);
      the image is ``<folder>/image_02/data/0000000069.png`` (``r`` -> ``image_03``) and the
      ground truth ``<drive>/proj_depth/groundtruth/image_02/0000000069.png``.
    * BTS style: ``<rgb path> <depth path or None> <focal>``.
    """
    parts = line.split()
    if len(parts) == 3 and parts[1].isdigit() and parts[2] in ("l", "r"):
        folder, frame, side = parts
        cam = "image_02" if side == "l" else "image_03"
        name = f"{int(frame):010d}.png"
        drive = Path(folder).name
        return f"{folder}/{cam}/data/{name}", f"{drive}/proj_depth/groundtruth/{cam}/{name}", None
    if len(parts) >= 2:
        depth = None if parts[1] == "None" else parts[1]
        focal = float(parts[2]) if len(parts) >= 3 else None
        return parts[0], depth, focal
    raise ValueError(f"cannot parse KITTI split line {line!r}")


class KITTIDepth(PairedFileSource):
    """KITTI frames with LiDAR ground truth, metres (``png / 256``, 0 = no measurement).

    Args:
        raw_root: root of the raw KITTI drives (``2011_09_26/...``).
        gt_root: root of the ground-truth PNGs (annotated depth ``<drive>/proj_depth/...``),
            directly or under ``train/`` / ``val/`` as in ``data_depth_annotated.zip``.
        split_file: Eigen or BTS-style split list (see :func:`parse_split_line`); lines whose
            ground truth is ``None`` or missing on disk are dropped.
        min_depth, max_depth: valid range in metres (defaults 1e-3 and 80).
    """

    def __init__(
        self,
        raw_root: str | Path,
        gt_root: str | Path,
        split_file: str | Path,
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
    ) -> None:
        super().__init__("kitti", min_depth, max_depth)
        self.raw_root, self.gt_root = Path(raw_root), Path(gt_root)
        split_file = Path(split_file)
        if not split_file.is_file():
            raise FileNotFoundError(f"KITTI split file {split_file} does not exist")
        self.skipped: list[str] = []
        for n, line in enumerate(split_file.read_text().splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rgb, depth, focal = parse_split_line(line)
            except ValueError as exc:
                raise ValueError(f"{split_file}:{n}: {exc}") from None
            gt = self._find_gt(depth) if depth is not None else None
            if gt is None:
                self.skipped.append(rgb)
                continue
            self.pairs.append(Pair(self.raw_root / rgb, gt, rgb, {"focal": focal}))

    def _find_gt(self, depth: str) -> Path | None:
        """``gt_root/<depth>``, or ``gt_root/{train,val}/<depth>`` (the layout of the official
        ``data_depth_annotated.zip``); None when absent."""
        for base in (self.gt_root, self.gt_root / "train", self.gt_root / "val"):
            if (base / depth).is_file():
                return base / depth
        return None

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        raw = read_png_uint16(pair.depth)
        return raw.astype(np.float32) / np.float32(256.0), raw > 0
