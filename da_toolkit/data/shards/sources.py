"""Sharded data sources: unlabeled images and labeled RGB-D samples from WebDataset tar shards."""

from __future__ import annotations

from typing import Any

from da_toolkit.data.shards.codec import decode_sample
from da_toolkit.data.shards.stream import ShardStream


class ShardedImages(ShardStream):
    """Unlabeled images streamed from tar shards (``key.jpg``/``.png``/``.webp`` + optional ``key.json``).

    Samples: ``image`` uint8 ``(H, W, 3)``, ``meta`` (``id`` from ``key.json`` or the shard key,
    ``image_ref = {"shard": "<url>:<key>"}`` unless the shard records one) and ``intrinsics`` when
    recorded; any depth members are ignored. Arguments: see :class:`ShardStream`.
    """

    name = "sharded_images"
    stream = "unlabeled"

    def decode(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """One raw shard record -> an unlabeled sample dict; ``where`` names it in errors."""
        return decode_sample(raw, source=self.name, where=where, labeled=False)


class ShardedRGBD(ShardStream):
    """Labeled RGB-D samples streamed from tar shards written by ``da-toolkit shards`` (or in its layout).

    Members: the image, ``key.depth.npy`` (float32 ``(H, W)``, units of ``depth_kind`` recorded in
    ``key.json``; metres for metric depth), optional ``key.valid.png`` (1 = valid),
    ``key.seg.png`` and ``intrinsics`` in ``key.json``. A sample without depth is a bad sample.
    Arguments: see :class:`ShardStream`.
    """

    name = "sharded_rgbd"
    stream = "labeled"

    def decode(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        """One raw shard record -> a labeled sample dict (depth, valid mask); ``where`` names it in errors."""
        return decode_sample(raw, source=self.name, where=where, labeled=True)
