"""Shared machinery of labeled sources made of (image file, depth file) pairs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from da_toolkit.data.io import read_rgb
from da_toolkit.data.sources.base import DataSource, DepthKind, make_sample


@dataclass(frozen=True)
class Pair:
    """One labeled item: its image file, its depth file, a stable id and optional extras."""

    image: Path
    depth: Path
    item_id: str
    extra: dict[str, Any] = field(default_factory=dict)


class PairedFileSource(DataSource):
    """Base of labeled sources whose items are :class:`Pair` s.

    Subclasses fill ``self.pairs`` and implement :meth:`load_depth`; they may override
    :meth:`intrinsics`. Depth of another size than the image is an error naming the depth file;
    non-finite depths and values outside ``[min_depth, max_depth]`` are masked invalid.
    """

    depth_kind: DepthKind = "metric"

    def __init__(self, name: str, min_depth: float | None = None, max_depth: float | None = None) -> None:
        self.name = name
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.pairs: list[Pair] = []

    def __len__(self) -> int:
        return len(self.pairs)

    def load_depth(self, pair: Pair) -> tuple[np.ndarray, np.ndarray | None]:
        """Depth float32 ``(H, W)`` in the units of ``depth_kind`` and an optional valid mask."""
        raise NotImplementedError

    def intrinsics(self, pair: Pair, image_shape: tuple[int, ...]) -> np.ndarray | None:
        """Intrinsics ``(3, 3)`` of a pair, or None."""
        return None

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[self._check_index(index)]
        image = read_rgb(pair.image)
        depth, valid = self.load_depth(pair)
        return make_sample(
            image,
            source=self.name,
            item_id=pair.item_id,
            image_ref={"path": str(pair.image.resolve())},
            depth=depth,
            depth_kind=self.depth_kind,
            valid=valid,
            intrinsics=self.intrinsics(pair, image.shape),
            where=pair.depth,
            min_depth=self.min_depth,
            max_depth=self.max_depth,
        )
