"""Sharded data at scale: WebDataset tar shards on local disks or object storage (``docs/scale.md``).

* :class:`ShardedImages`, :class:`ShardedRGBD`: streaming sources (every rank and loader worker
  reads its own part of the shards; mid-epoch resume through :class:`ShardLoader`);
* :class:`ShardWriter` and :func:`pack_source` (``da-toolkit shards``): write shards;
* :class:`PseudoLabelShardWriter` / :class:`PseudoLabelShards`: pseudo-labels as shards;
* :class:`ShardStudentDataModule`: the student's data module over shard streams.
"""

from da_toolkit.data.shards.loader import ShardLoader
from da_toolkit.data.shards.pseudo import PseudoLabelShards
from da_toolkit.data.shards.sources import ShardedImages, ShardedRGBD
from da_toolkit.data.shards.stream import ShardStream
from da_toolkit.data.shards.writer import ShardWriter

#: the streaming data sources, registered by the built-in plugin beside
#: ``da_toolkit.data.sources.BUILTIN_DATASOURCES``
BUILTIN_SHARD_SOURCES: dict[str, type] = {
    "sharded_images": ShardedImages,
    "sharded_rgbd": ShardedRGBD,
    "pseudo_label_shards": PseudoLabelShards,
}

__all__ = [
    "BUILTIN_SHARD_SOURCES",
    "PseudoLabelShards",
    "ShardLoader",
    "ShardStream",
    "ShardWriter",
    "ShardedImages",
    "ShardedRGBD",
]
