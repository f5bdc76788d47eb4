"""Labeled RGB-D folders: RGB images + 16-bit depth PNGs in millimetres (e.g. a 3D skin scanner)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from da_toolkit.data.io import read_png_uint16, read_rgb
from da_toolkit.data.sources.base import DataSource, intrinsics_matrix, make_sample

RGB_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


class RGBDFolder(DataSource):
    """Items ``root/<rgb_dir>/<id>.{png,jpg,jpeg}`` with depth ``root/<depth_dir>/<id>.png``.

    Depth files are single-channel 16-bit PNGs holding millimetres: ``depth = stored /
    depth_scale`` metres (``depth_scale=1000``). Stored values in ``invalid_values`` (default 0 =
    no measurement and 65535 = saturated) and depths outside ``[min_depth, max_depth]`` are
    invalid. Ids are the paths relative to ``<rgb_dir>`` without extension (sub-folders
    allowed), sorted.

    Each sample (da-toolkit's sample contract, built by ``make_sample``): ``image`` uint8
    ``(H,W,3)``; ``depth`` float32 ``(H,W)`` metres (0 where invalid); ``depth_kind`` ``"metric"``;
    ``valid`` bool ``(H,W)``; ``intrinsics`` float32 ``(3,3)`` if given; ``meta`` = ``{"source":
    name, "id": id, "image_ref": {"path": absolute RGB path}}``.

    Args:
        root: dataset folder.
        rgb_dir, depth_dir: sub-folders of images and depth PNGs.
        depth_scale: stored units per metre (1000: millimetres).
        invalid_values: stored values meaning "no measurement".
        min_depth, max_depth: valid range in metres (``None``: unbounded).
        intrinsics: ``(fx, fy, cx, cy)`` in pixels, shared by all frames.
        missing: an image without depth is an ``"error"`` (default) or ``"skip"``ped with one warning.
        name: source name in ``meta["source"]``.
    """

    def __init__(
        self,
        root: str | Path,
        rgb_dir: str = "rgb",
        depth_dir: str = "depth",
        depth_scale: float = 1000.0,
        invalid_values: tuple[int, ...] = (0, 65535),
        min_depth: float | None = None,
        max_depth: float | None = None,
        intrinsics: tuple[float, float, float, float] | None = None,
        missing: Literal["error", "skip"] = "error",
        name: str = "rgbd_folder",
    ) -> None:
        if depth_scale <= 0:
            raise ValueError(f"RGBDFolder.depth_scale={depth_scale}: expected > 0 (stored units per metre)")
        if intrinsics is not None and len(intrinsics) != 4:
            raise ValueError(f"RGBDFolder.intrinsics={intrinsics}: expected (fx, fy, cx, cy)")
        if missing not in ("error", "skip"):
            raise ValueError(f"RGBDFolder.missing={missing!r}: expected 'error' or 'skip'")
        self.root = Path(root)
        self.name = name
        self.depth_scale = float(depth_scale)
        self.invalid_values = tuple(int(v) for v in invalid_values)
        self.min_depth, self.max_depth = min_depth, max_depth
        self._k = intrinsics_matrix(*intrinsics) if intrinsics is not None else None
        rgb_root, depth_root = self.root / rgb_dir, self.root / depth_dir
        for folder in (rgb_root, depth_root):
            if not folder.is_dir():
                raise FileNotFoundError(f"RGBDFolder: folder {folder} does not exist")
        images = sorted(
            (p for p in rgb_root.rglob("*") if p.is_file() and p.suffix.lower() in RGB_EXTENSIONS),
            key=lambda p: p.relative_to(rgb_root).as_posix(),
        )
        self.items: list[tuple[str, Path, Path]] = []
        lacking = []
        for image in images:
            item_id = image.relative_to(rgb_root).with_suffix("").as_posix()
            depth = depth_root / f"{item_id}.png"
            if depth.is_file():
                self.items.append((item_id, image, depth))
            else:
                lacking.append(depth)
        if lacking and missing == "error":
            raise FileNotFoundError(
                f"RGBDFolder {self.root}: {len(lacking)} image(s) without a depth PNG, e.g. {lacking[0]} "
                f"(missing='skip' skips them)"
            )
        if lacking:
            warnings.warn(f"RGBDFolder {self.root}: skipped {len(lacking)} image(s) without depth, e.g. {lacking[0]}", stacklevel=2)
        if not self.items:
            raise FileNotFoundError(f"RGBDFolder {self.root}: no RGB + depth pairs in {rgb_root} / {depth_root}")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item_id, image_path, depth_path = self.items[self._check_index(index)]
        raw = read_png_uint16(depth_path)  # SampleReadError naming the file if it is not 16-bit
        valid = ~np.isin(raw, self.invalid_values)
        return make_sample(
            read_rgb(image_path),
            source=self.name,
            item_id=item_id,
            image_ref={"path": str(image_path.resolve())},
            depth=raw.astype(np.float32) / np.float32(self.depth_scale),
            depth_kind="metric",
            valid=valid,
            intrinsics=self._k,
            where=depth_path,
            min_depth=self.min_depth,
            max_depth=self.max_depth,
        )
