"""Shard URLs: brace expansion and fsspec access (local paths, ``file://``, ``s3://``, ``gs://``...).

``storage_options`` are passed to fsspec unchanged (for S3 e.g. ``{"key": ..., "secret": ...,
"client_kwargs": {"endpoint_url": ...}}``; without them the usual AWS environment variables and
files apply).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
from webdataset.shardlists import expand_urls


def expand_shard_urls(urls: str | list[str]) -> list[str]:
    """Brace-expand shard URLs: ``"data/train-{000000..000127}.tar"`` -> 128 URLs.

    A string may hold several patterns separated by ``::`` (the WebDataset convention); a list
    has each element expanded. Raises ``ValueError`` when nothing is left.
    """
    items = [urls] if isinstance(urls, str) else list(urls)
    out: list[str] = []
    for item in items:
        out.extend(expand_urls(str(item)))
    if not out:
        raise ValueError(f"shard URLs {urls!r} expand to no shard")
    return out


def url_to_fs(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of ``url`` and the path inside it."""
    fs, path = fsspec.core.url_to_fs(str(url), **dict(storage_options or {}))
    return fs, path


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URLs."""
    return "://" not in str(url) or str(url).startswith("file://")


def local_path(url: str) -> Path:
    """The filesystem path of a local URL (``file://`` stripped)."""
    text = str(url)
    return Path(text.removeprefix("file://"))


def join_url(base: str, name: str) -> str:
    """``base`` + ``/`` + ``name`` (``name`` returned unchanged when it is already a URL or absolute)."""
    if "://" in name or name.startswith("/"):
        return name
    if is_local(base):
        return str(local_path(base) / name) if not str(base).startswith("file://") else f"{base.rstrip('/')}/{name}"
    return posixpath.join(str(base).rstrip("/"), name)


def open_url(url: str, mode: str = "rb", storage_options: Mapping[str, Any] | None = None) -> IO[bytes]:
    """Open one URL with fsspec (the caller closes it); local files with a 1 MiB read buffer."""
    if is_local(url) and mode == "rb":
        return open(local_path(url), "rb", buffering=1 << 20)
    return fsspec.open(str(url), mode, **dict(storage_options or {})).open()


def read_bytes(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """Whole content of ``url``."""
    fs, path = url_to_fs(url, storage_options)
    return fs.cat_file(path)


def exists(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``url`` exists."""
    fs, path = url_to_fs(url, storage_options)
    return bool(fs.exists(path))


def glob(pattern: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Sorted URLs matching a glob pattern (same scheme as ``pattern``)."""
    fs, path = url_to_fs(pattern, storage_options)
    found = sorted(fs.glob(path))
    if is_local(pattern):
        return [f"file://{p}" if str(pattern).startswith("file://") else p for p in found]
    protocol = str(pattern).split("://", 1)[0]
    return [f"{protocol}://{p}" for p in found]


def put_file_atomic(local: str | os.PathLike[str], url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Move/upload the finished local file ``local`` onto ``url`` so that readers see all or nothing.

    Local destination: ``os.replace`` (same folder required, see :func:`staging_file`). Object
    storage: a single upload (an object appears only when its upload completes).
    """
    if is_local(url):
        dest = local_path(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, dest)
        return
    fs, path = url_to_fs(url, storage_options)
    fs.put_file(str(local), path)
    os.unlink(local)


@contextmanager
def staging_file(url: str, suffix: str = ".part") -> Iterator[Path]:
    """A temporary local file to write the content of ``url`` into before :func:`put_file_atomic`.

    For a local ``url`` it lies next to the destination (so that the final rename is atomic);
    otherwise in the system temporary folder. Removed if still present on exit.
    """
    if is_local(url):
        dest = local_path(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    else:
        fd, name = tempfile.mkstemp(prefix="da-shard-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        if os.path.exists(name):
            os.unlink(name)


def write_bytes_atomic(url: str, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write ``data`` to ``url`` atomically (temp + rename locally, one upload remotely)."""
    with staging_file(url) as tmp:
        tmp.write_bytes(data)
        if is_local(url):
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        put_file_atomic(tmp, url, storage_options)
