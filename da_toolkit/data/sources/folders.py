"""Folder sources: unlabeled image folders and labeled rgb/depth folder pairs."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import IMAGE_EXTENSIONS, read_npy, read_pfm, read_png_uint16, read_rgb
from da_toolkit.data.sources.base import DataSource, DepthKind, intrinsics_matrix, make_sample
from da_toolkit.data.sources.paired import Pair, PairedFileSource
from da_toolkit.data.walk import not_regular, walk


def _read_png_depth(path: Path) -> np.ndarray:
    return read_png_uint16(path).astype(np.float32)


def _read_npy_depth(path: Path) -> np.ndarray:
    return read_npy(path, ndim=2).astype(np.float32)


def _read_pfm_depth(path: Path) -> np.ndarray:
    raw = read_pfm(path)
    if raw.ndim != 2:
        raise SampleReadError(path, f"expected a greyscale PFM, got shape {raw.shape}")
    return raw


#: depth file extension -> (reader returning stored values as float32 (H, W), default depth_scale)
DEPTH_READERS: dict[str, tuple[Callable[[Path], np.ndarray], float]] = {
    ".png": (_read_png_depth, 1000.0),
    ".npy": (_read_npy_depth, 1.0),
    ".pfm": (_read_pfm_depth, 1.0),
}
DEPTH_EXTENSIONS: tuple[str, ...] = tuple(DEPTH_READERS)


def list_images(root: Path, recursive: bool = True, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files under ``root`` (case-insensitive extensions), sorted by relative path.

    Directory symbolic links are never entered (each one met is named in one warning, loops as
    such) and a file reached twice (a second link to the same file) is listed once, with a
    warning. Entries named like images that are not regular files (a dangling link, a link loop,
    a FIFO) are listed: reading them is a per-file error naming them (:func:`check_regular`),
    not a silent drop. Hidden entries are skipped.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    exts = {e.lower() for e in extensions}
    links: list[str] = []
    files: list[Path] = []
    seen: dict[Path, Path] = {}
    twice: list[str] = []
    for path in walk(root, links, None if recursive else 0):
        if path.suffix.lower() not in exts:
            continue
        real = path.resolve() if not_regular(path) is None else path.absolute()
        if real in seen:
            twice.append(f"{path} (same file as {seen[real]})")
            continue
        seen[real] = path
        files.append(path)
    if links and recursive:
        warnings.warn(f"image folder {root}: directory links are not followed: {'; '.join(links)}", UserWarning,
                      stacklevel=2)
    if twice:
        warnings.warn(f"image folder {root}: files found twice are listed once: {'; '.join(twice)}", UserWarning,
                      stacklevel=2)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def check_regular(path: Path) -> None:
    """Raise :class:`~da_toolkit.data.errors.SampleReadError` naming ``path`` when it is not a
    readable regular file (dangling link, link loop, FIFO, device, folder); never opens it."""
    reason = not_regular(path)
    if reason is not None:
        raise SampleReadError(path, reason)


def read_file_list(path: Path, base: Path) -> list[Path]:
    """Paths listed one per line in ``path`` (``#`` comments, blanks ignored), relative to ``base``."""
    if not path.is_file():
        raise FileNotFoundError(f"file list {path} does not exist")
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = Path(line)
            out.append(p if p.is_absolute() else base / p)
    return out


class ImageFolder(DataSource):
    """Unlabeled images from a folder (recursive) or from a file list.

    Decoding goes through :func:`da_toolkit.data.io.read_rgb` (EXIF orientation; greyscale,
    RGBA, 16-bit, CMYK -> RGB uint8). An unreadable file, and an entry named like an image that
    is not a regular file (dangling link, link loop, FIFO), raises
    :class:`~da_toolkit.data.errors.SampleReadError` naming it (the data module skips or raises).
    Scanning never follows directory links and lists each file once (:func:`list_images`).

    Args:
        root: folder to scan; also the base of relative paths in ``files``/``file_list``.
        files: explicit image paths instead of scanning.
        file_list: a text file with one image path per line instead of scanning.
        recursive: scan sub-folders.
        extensions: accepted extensions (case-insensitive).
        name: source name in ``meta["source"]``.
    """

    def __init__(
        self,
        root: str | Path = ".",
        files: list[str] | None = None,
        file_list: str | Path | None = None,
        recursive: bool = True,
        extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
        name: str = "image_folder",
    ) -> None:
        self.root = Path(root)
        self.name = name
        if files is not None and file_list is not None:
            raise ValueError("ImageFolder: give either files or file_list, not both")
        if files is not None:
            self.files = [Path(f) if Path(f).is_absolute() else self.root / f for f in files]
        elif file_list is not None:
            self.files = read_file_list(Path(file_list), self.root)
        else:
            self.files = list_images(self.root, recursive, extensions)

    def __len__(self) -> int:
        return len(self.files)

    def _item_id(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def item_id(self, index: int) -> str:
        """``meta["id"]`` of item ``index`` without reading it (the pseudo-label resume skips by it)."""
        return self._item_id(self.files[self._check_index(index)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[self._check_index(index)]
        check_regular(path)  # a FIFO named like an image would block the reader
        return make_sample(read_rgb(path), source=self.name, item_id=self._item_id(path), image_ref={"path": str(path.resolve())})


class PairedFolder(PairedFileSource):
    """Labeled ``root/<rgb_dir>/<stem>.<img>`` + ``root/<depth_dir>/<stem>.{png,npy,pfm}`` pairs.

    Pairs are matched by relative path without extension (sub-folders allowed). Depth values:
    16-bit PNG, ``.npy`` or ``.pfm``; ``depth = stored / depth_scale`` (default 1000 for PNG,
    i.e. millimetres -> metres, and 1 for ``.npy``/``.pfm``). Stored values in
    ``invalid_values`` (e.g. 0 and 65535), non-finite values and depths outside
    ``[min_depth, max_depth]`` are invalid.

    Args:
        root: dataset folder.
        rgb_dir, depth_dir: sub-folders of images and depth maps.
        depth_scale: divisor from stored values to depth units; None = per-format default.
        depth_kind: ``"metric"`` (metres), ``"disparity"`` or ``"relative"``.
        invalid_values: stored values meaning "no measurement".
        min_depth, max_depth: valid range after scaling (None = unbounded).
        intrinsics: ``(fx, fy, cx, cy)`` in pixels of the stored images, shared by all frames.
        require_pairs: error on images without depth (default: warn once and drop them).
        name: source name in ``meta["source"]``.
    """

    def __init__(
        self,
        root: str | Path,
        rgb_dir: str = "rgb",
        depth_dir: str = "depth",
        depth_scale: float | None = None,
        depth_kind: DepthKind = "metric",
        invalid_values: tuple[float, ...] = (0.0,),
        min_depth: float | None = None,
        max_depth: float | None = None,
        intrinsics: tuple[float, float, float, float] | None = None,
        require_pairs: bool = False,
        name: str = "paired_folder",
    ) -> None:
        super().__init__(name, min_depth, max_depth)
        self.root = Path(root)
        self.depth_scale = depth_scale
        self.depth_kind = depth_kind
        self.invalid_values = tuple(float(v) for v in invalid_values)
        if depth_scale is not None and depth_scale <= 0:
            raise ValueError(f"PairedFolder.depth_scale={depth_scale}: expected > 0")
        if intrinsics is not None and len(intrinsics) != 4:
            raise ValueError(f"PairedFolder.intrinsics={intrinsics}: expected (fx, fy, cx, cy)")
        self._k = intrinsics_matrix(*intrinsics) if intrinsics is not None else None
        rgb_root, depth_root = self.root / rgb_dir, self.root / depth_dir
        if not depth_root.is_dir():
            raise FileNotFoundError(f"PairedFolder: depth folder {depth_root} does not exist")
        depths: dict[str, Path] = {}
        for p in sorted(depth_root.rglob("*")):
            if p.is_file() and p.suffix.lower() in DEPTH_EXTENSIONS:
                depths.setdefault(p.relative_to(depth_root).with_suffix("").as_posix(), p)
        missing = []
        unreadable = []
        for img in list_images(rgb_root):
            reason = not_regular(img)
            if reason is not None:
                unreadable.append(f"{img}: {reason}")
                continue
            key = img.relative_to(rgb_root).with_suffix("").as_posix()
            if key in depths:
                self.pairs.append(Pair(img, depths[key], key))
            else:
                missing.append(img)
        if missing:
            msg = f"PairedFolder {self.root}: {len(missing)} image(s) without depth in {depth_root}, e.g. {missing[0]}"
            if require_pairs:
                raise FileNotFoundError(msg)
            warnings.warn(msg + "; they are skipped", stacklevel=2)
        if unreadable:
            warnings.warn(f"PairedFolder {self.root}: {len(unreadable)} image entr(ies) skipped: "
                          f"{'; '.join(unreadable)}", UserWarning, stacklevel=2)

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth map (H,W) float32 of ``pair`` and its valid mask (True = valid), or None."""
        reader, default_scale = DEPTH_READERS[pair.depth.suffix.lower()]
        raw = reader(pair.depth)
        scale = default_scale if self.depth_scale is None else self.depth_scale
        valid = np.ones(raw.shape, dtype=bool)
        for value in self.invalid_values:
            valid &= raw != value
        return raw / np.float32(scale), valid

    def intrinsics(self, pair: Pair, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Pinhole intrinsics (3,3) of ``pair`` at ``image_shape``, or None when unknown."""
        return self._k
