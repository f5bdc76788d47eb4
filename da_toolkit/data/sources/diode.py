"""DIODE (``<name>.png``, ``<name>_depth.npy`` metres ``(H, W, 1)``, ``<name>_depth_mask.npy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import read_npy
from da_toolkit.data.sources.paired import Pair, PairedFileSource


class DIODE(PairedFileSource):
    """DIODE indoor/outdoor scans, metric depth with the official validity mask.

    Args:
        root: a DIODE split folder (e.g. ``val``) holding ``indoors/`` and ``outdoor/``.
        scene_type: ``"all"``, ``"indoors"`` or ``"outdoor"``.
        min_depth, max_depth: valid range in metres (defaults 1e-3 and 350).
    """

    def __init__(
        self,
        root: str | Path,
        scene_type: Literal["all", "indoors", "outdoor"] = "all",
        min_depth: float = 1e-3,
        max_depth: float = 350.0,
    ) -> None:
        super().__init__("diode", min_depth, max_depth)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"DIODE folder {self.root} does not exist")
        base = self.root if scene_type == "all" else self.root / scene_type
        for depth in sorted(base.rglob("*_depth.npy")):
            image = depth.with_name(depth.name[: -len("_depth.npy")] + ".png")
            if image.is_file():
                rel = image.relative_to(self.root).with_suffix("").as_posix()
                self.pairs.append(Pair(image, depth, rel))

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        depth = read_npy(pair.depth, ndim=2).astype(np.float32)
        mask_path = pair.depth.with_name(pair.depth.name[: -len(".npy")] + "_mask.npy")
        if not mask_path.is_file():
            raise SampleReadError(mask_path, "DIODE validity mask is missing")
        mask = read_npy(mask_path, ndim=2)
        if mask.shape != depth.shape:
            raise SampleReadError(mask_path, f"mask is {mask.shape} but depth is {depth.shape}")
        return depth, mask > 0
