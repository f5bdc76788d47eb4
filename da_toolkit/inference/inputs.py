"""Finding the inputs of a prediction run: files, folders (recursive), globs and videos."""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from da_toolkit.data.io import IMAGE_EXTENSIONS
from da_toolkit.data.walk import not_regular as _not_regular
from da_toolkit.data.walk import walk as _walk
from da_toolkit.inference.guards import UsageError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
"""File extensions (lower case) treated as videos."""

_GLOB_CHARS = set("*?[")


class InputError(UsageError):
    """Inputs of a prediction run that cannot be used (one line naming the paths)."""


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path that does not exist, or a folder / glob with no image or video in it."""


@dataclass(frozen=True)
class InputFile:
    """One input file.

    Attributes:
        path: the file.
        id: output id: its path relative to the input root, "/"-separated, without extension.
        is_video: read frame by frame (outputs go under ``<id>/``).
        error: why this entry cannot be read (a dangling or looping link, a directory or
            device named like an image), reported as the item's per-file error; ``None`` if fine.
    """

    path: Path
    id: str
    is_video: bool
    error: str | None = None


def _rel_id(path: Path, root: Path) -> str:
    rel = path.relative_to(root) if root != path else Path(path.name)
    return rel.with_suffix("").as_posix()


def _split_glob(pattern: str) -> tuple[Path, tuple[str, ...]]:
    """``(root, pattern segments)``: the fixed leading folders and the rest of a glob pattern."""
    parts = Path(pattern).parts
    n = 0
    while n < len(parts) and not _GLOB_CHARS & set(parts[n]):
        n += 1
    return (Path(*parts[:n]) if n else Path(".")), parts[n:]


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Glob match of path segments: ``**`` = zero or more segments, others as ``fnmatch``."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def discover_inputs(
    paths: str | Sequence[str],
    image_extensions: Sequence[str] = IMAGE_EXTENSIONS,
    video_extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> list[InputFile]:
    """Expand files, folders (recursively, sorted) and glob patterns into input files.

    Folders and globs keep only entries with an image or video extension; a file named explicitly is
    always kept (a non-image fails later with a per-file error). Ids mirror the tree under each
    folder / glob root; a single file's id is its stem. Folders and ``**`` never enter directory
    symbolic links (each one met is reported once in a warning, loops named as such), and a file
    reached twice (same resolved path) is predicted once. Entries with an image/video extension
    that are not regular files (dangling or looping links, directories, FIFOs) are kept with
    :attr:`InputFile.error` set, so they are reported per file like unreadable images.

    Raises:
        InputError: a path that does not exist, a glob/folder that matches nothing, or two
            inputs that would write to the same output id (one line naming both).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [str(paths)]
    if not paths:
        raise InputError("no input path given (data.path is empty)")
    img_ext = {e.lower() for e in image_extensions}
    vid_ext = {e.lower() for e in video_extensions}
    found: list[InputFile] = []
    links: list[str] = []

    def wanted(p: Path) -> bool:
        return p.suffix.lower() in img_ext | vid_ext and not p.name.startswith(".")

    def entry(p: Path, root: Path) -> InputFile:
        return InputFile(p, _rel_id(p, root), p.suffix.lower() in vid_ext, _not_regular(p))

    for raw in paths:
        raw = str(raw)
        if _GLOB_CHARS & set(raw):
            root, pattern = _split_glob(raw)
            depth = None if "**" in pattern else len(pattern) - 1
            files = [m for m in _walk(root, links, depth) if wanted(m) and _match(pattern, m.relative_to(root).parts)]
            if not files:
                raise InputNotFoundError(f"input glob {raw!r} matched no image or video file")
            found += [entry(f, root) for f in files]
            continue
        p = Path(raw)
        if p.is_dir():
            files = [f for f in _walk(p, links) if wanted(f)]
            if not files:
                raise InputNotFoundError(
                    f"input folder {raw!r} holds no image ({', '.join(sorted(img_ext))}) "
                    f"or video ({', '.join(sorted(vid_ext))}) file"
                )
            found += [entry(f, p) for f in files]
        elif p.is_file():
            found.append(InputFile(p, p.stem, p.suffix.lower() in vid_ext))
        else:
            raise InputNotFoundError(f"input path {raw!r} does not exist")
    if links:
        warnings.warn(f"da-toolkit predict: directory links are not followed: {'; '.join(links)}", UserWarning,
                      stacklevel=2)
    out: list[InputFile] = []
    seen_ids: dict[str, Path] = {}
    seen_files: dict[Path, Path] = {}
    twice: list[str] = []
    for item in found:
        real = item.path.resolve() if item.error is None else item.path.absolute()
        if real in seen_files:
            twice.append(f"{item.path} (same file as {seen_files[real]})")
            continue
        if item.id in seen_ids:
            raise InputError(
                f"inputs {seen_ids[item.id]} and {item.path} would write the same outputs (id {item.id!r}); "
                "rename one or predict them in separate runs"
            )
        seen_files[real] = item.path
        seen_ids[item.id] = item.path
        out.append(item)
    if twice:
        warnings.warn(f"da-toolkit predict: inputs found twice are predicted once: {'; '.join(twice)}", UserWarning,
                      stacklevel=2)
    return out
