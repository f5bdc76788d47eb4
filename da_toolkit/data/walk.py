"""Walking input folders safely: no directory links followed, non-regular entries named.

Shared by ``da-toolkit predict``'s input discovery (:mod:`da_toolkit.inference.inputs`) and the
``image_folder`` data source (:mod:`da_toolkit.data.sources.folders`), so both find the same
files and describe an entry that cannot be read (a dangling or looping link, a FIFO) the same way.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["not_regular", "walk"]


def not_regular(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file (one phrase for an error message), or ``None``.

    Only ``stat`` is called: a FIFO or device is never opened (opening a FIFO blocks).
    """
    try:
        st = path.stat()
    except OSError as exc:
        if path.is_symlink():
            kind = "a symbolic link loop" if exc.errno == errno.ELOOP else "a dangling symbolic link"
            return f"not a regular file ({kind} -> {os.readlink(path)})"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
    return f"not a regular file ({kind})"


def walk(root: Path, links: list[str], depth: int | None = None) -> Iterator[Path]:
    """Every non-directory entry under ``root``, sorted by name, depth first.

    Args:
        root: the folder to walk.
        links: receives one description per directory symbolic link met (never entered; a link
            back into the tree is named as a loop).
        depth: how many folder levels below ``root`` to enter (``0`` = ``root``'s own entries
            only); ``None`` = all.

    Hidden entries (names starting with ``.``) are skipped. Links to files, dangling links and
    link loops are yielded as they are (see :func:`not_regular`).
    """
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if depth is None or depth > 0:
                yield from walk(path, links, None if depth is None else depth - 1)
            continue
        if entry.is_symlink() and path.is_dir():
            target = path.resolve()
            loop = target == root.resolve() or target in root.resolve().parents
            links.append(f"{path} -> {os.readlink(path)}" + (" (a loop back into the tree)" if loop else ""))
            continue
        yield path
