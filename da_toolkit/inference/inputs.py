"""Finding the inputs of a prediction run: files, folders (recursive), globs and videos."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from da_toolkit.data.io import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
"""File extensions (lower case) treated as videos."""

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """One input file.

    Attributes:
        path: the file.
        id: output id: its path relative to the input root, "/"-separated, without extension.
        is_video: read frame by frame (outputs go under ``<id>/``).
    """

    path: Path
    id: str
    is_video: bool


def _rel_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root) if root != path else Path(path.name)
    return rel.with_suffix("").as_posix()


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def discover_inputs(
    paths: str | Sequence[str],
    image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
    video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[InputFile]:
    """Expand files, folders (recursively, sorted) and glob patterns into input files.

    Folders and globs keep only files with an image or video extension; a file named explicitly is
    always kept (a non-image fails later with a per-file error). Ids mirror the tree under each
    folder / glob root; a single file's id is its stem.

    Raises:
        FileNotFoundError: a path that does not exist or a glob that matches nothing.
        ValueError: two inputs that would write to the same output id.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [str(paths)]
    if not paths:
        raise ValueError("no input path given (data.path is empty)")
    img_ext = {e.lower() for e in image_extensions}
    vid_ext = {e.lower() for e in video_extensions}
    found: list[InputFile] = []

    def keep(p: Path) -> bool:
        return p.is_file() and p.suffix.lower() in img_ext | vid_ext and not p.name.startswith(".")

    for raw in paths:
        raw = str(raw)
        if _GLOB_CHARS & set(raw):
            root = _glob_root(raw)
            matches = sorted(Path(m) for m in glob.glob(raw, recursive=True))
            files = [m for m in matches if keep(m)]
            if not files:
                raise FileNotFoundError(f"input glob {raw!r} matched no image or video file")
            found += [InputFile(f, _rel_id(f, root), f.suffix.lower() in vid_ext) for f in files]
            continue
        p = Path(raw)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if keep(f))
            if not files:
                raise FileNotFoundError(
                    f"input folder {raw!r} holds no image ({', '.join(sorted(img_ext))}) "
                    f"or video ({', '.join(sorted(vid_ext))}) file"
                )
            found += [InputFile(f, _rel_id(f, p), f.suffix.lower() in vid_ext) for f in files]
        elif p.is_file():
            found.append(InputFile(p, p.stem, p.suffix.lower() in vid_ext))
        else:
            raise FileNotFoundError(f"input path {raw!r} does not exist")
    seen: dict[str, Path] = {}
    for item in found:
        if item.id in seen and seen[item.id] != item.path:
            raise ValueError(
                f"inputs {seen[item.id]} and {item.path} would write the same outputs (id {item.id!r}); "
                "rename one or predict them in separate runs"
            )
        seen[item.id] = item.path
    return found
