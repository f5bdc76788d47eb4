"""Synthetic procedural scenes as a labeled data source (metric depth, exact ground truth)."""

from __future__ import annotations

from typing import Any

from da_toolkit.data.sources.base import DataSource, make_sample, source_config
from da_toolkit.data.synthetic.domain import SceneDomain
from da_toolkit.data.synthetic.render import render_scene
from da_toolkit.data.synthetic.scene import sample_scene


class SyntheticScenes(DataSource):
    """Ray-cast rooms / outdoor ground planes with boxes, spheres and cylinders.

    Sample ``i`` is a pure function of ``(domain, seed, i)``. Each sample has ``image`` uint8
    ``(H, W, 3)``, ``depth`` float32 metric z-depth in metres (``depth_kind="metric"``), ``valid``
    (False on sky and beyond ``domain.far``), ``seg`` (0 sky, 1 floor/ground, 2 wall, 3 ceiling,
    4 box, 5 sphere, 6 cylinder) and ``intrinsics`` float32 ``(3, 3)`` pixels.

    Args:
        length: number of scenes.
        size: ``(height, width)`` in pixels.
        seed: stream seed; different seeds give disjoint scene streams.
        domain: scene distribution (default :class:`SceneDomain()`: mixed indoor/outdoor).
        labeled: ``False`` drops depth/valid/seg (an unlabeled stream of the same world).
        name: source name in ``meta["source"]``.
    """

    def __init__(
        self,
        length: int = 64,
        size: tuple[int, int] = (128, 160),
        seed: int = 0,
        domain: SceneDomain | None = None,
        labeled: bool = True,
        name: str = "synthetic",
    ) -> None:
        if length < 0:
            raise ValueError(f"SyntheticScenes.length={length}: expected >= 0")
        size = tuple(int(s) for s in size)  # type: ignore[assignment]
        if len(size) != 2 or min(size) < 2:
            raise ValueError(f"SyntheticScenes.size={size}: expected (height, width) >= 2 pixels")
        if domain is not None and not isinstance(domain, SceneDomain):
            raise TypeError(f"SyntheticScenes.domain must be a SceneDomain, got {type(domain).__name__}")
        self.length = int(length)
        self.size = size
        self.seed = int(seed)
        self.domain = domain if domain is not None else SceneDomain()
        self.labeled = bool(labeled)
        self.name = name
        self._config = source_config(
            self,
            {"length": self.length, "size": list(size), "seed": self.seed, "domain": self.domain,
             "labeled": self.labeled, "name": name},
        )

    def __len__(self) -> int:
        return self.length

    def item_id(self, index: int) -> str:
        """``meta["id"]`` of item ``index`` without rendering it (the pseudo-label resume skips by it)."""
        return f"seed{self.seed}/{self._check_index(index):08d}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        out = render_scene(sample_scene(self.domain, self.seed, index), *self.size)
        item_id = self.item_id(index)
        ref = {"source": self._config, "index": index}
        if not self.labeled:
            return make_sample(out["image"], source=self.name, item_id=item_id, image_ref=ref, intrinsics=out["intrinsics"])
        return make_sample(
            out["image"],
            source=self.name,
            item_id=item_id,
            image_ref=ref,
            depth=out["depth"],
            depth_kind="metric",
            valid=out["valid"],
            seg=out["seg"],
            intrinsics=out["intrinsics"],
        )
