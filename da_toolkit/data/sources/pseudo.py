"""Read a pseudo-label store back as a labeled source of relative disparity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import read_npy, read_rgb
from da_toolkit.data.pseudo_store import SHARD_HEADER, StoreMismatchError, read_manifest, read_shard_header
from da_toolkit.data.sources.base import DataSource, instantiate, make_sample


class PseudoLabelSource(DataSource):
    """Items of a pseudo-label store (see :mod:`da_toolkit.data.pseudo_store`).

    Each sample has the original image (from the recorded ``image_ref``: a file path, relative
    paths resolved against ``root``, or item ``index`` of a data source rebuilt from its
    ``class_path``/``init_args``) and ``depth`` = the stored teacher output, ``depth_kind =
    "relative"`` (relative disparity, float32 ``(H, W)``), ``valid`` = finite values.

    Args:
        root: the store folder.
        shards: shard names to read (default: all shards in ``root``, sorted by name).
        teacher_hash: if given, every shard must have been written by this teacher.

    Raises:
        StoreMismatchError: no shards, or shards from different teachers/settings.
    """

    name = "pseudo_labels"

    def __init__(self, root: str | Path, shards: list[str] | None = None, teacher_hash: str | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"pseudo-label store {self.root} does not exist")
        names = shards if shards is not None else sorted(
            p.name for p in self.root.iterdir() if (p / SHARD_HEADER).exists()
        )
        if not names:
            raise StoreMismatchError(f"pseudo-label store {self.root} has no shards ({SHARD_HEADER} files)")
        self.header: dict[str, Any] | None = None
        entries: dict[str, tuple[str, dict[str, Any]]] = {}
        for shard in names:
            shard_dir = self.root / shard
            header = read_shard_header(shard_dir)
            if teacher_hash is not None and header["teacher_hash"] != teacher_hash:
                raise StoreMismatchError(
                    f"{shard_dir}: written by teacher {header['teacher_hash']}, expected {teacher_hash}"
                )
            if self.header is None:
                self.header = header
            elif header != self.header:
                raise StoreMismatchError(
                    f"{self.root}: shard {shard!r} has {json.dumps(header, sort_keys=True)} but shard "
                    f"{names[0]!r} has {json.dumps(self.header, sort_keys=True)}"
                )
            for entry in read_manifest(shard_dir):
                entries[entry["id"]] = (shard, entry)
        self._items = [entries[k] for k in sorted(entries)]
        self._sources: dict[str, Any] = {}

    @property
    def teacher_hash(self) -> str:
        """The teacher checkpoint hash every shard records."""
        assert self.header is not None
        return str(self.header["teacher_hash"])

    @property
    def settings(self) -> dict[str, Any]:
        """The settings every shard records."""
        assert self.header is not None
        return dict(self.header["settings"])

    def __len__(self) -> int:
        return len(self._items)

    def _image(self, ref: dict[str, Any], where: str) -> np.ndarray:
        if "path" in ref:
            path = Path(ref["path"])
            return read_rgb(path if path.is_absolute() else self.root / path)
        key = json.dumps(ref["source"], sort_keys=True)
        if key not in self._sources:
            try:
                self._sources[key] = instantiate(ref["source"])
            except Exception as exc:  # noqa: BLE001 - report which item's reference is broken
                raise SampleReadError(where, f"cannot rebuild image source {ref['source']}: {exc}") from None
        return self._sources[key][int(ref["index"])]["image"]

    def __getitem__(self, index: int) -> dict[str, Any]:
        shard, entry = self._items[self._check_index(index)]
        npy = self.root / shard / entry["file"]
        disparity = read_npy(npy, ndim=2).astype(np.float32)
        image = self._image(entry["image_ref"], str(npy))
        return make_sample(
            image,
            source=self.name,
            item_id=entry["id"],
            image_ref=entry["image_ref"],
            depth=disparity,
            depth_kind="relative",
            where=npy,
        )
