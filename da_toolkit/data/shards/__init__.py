"""Sharded data at scale: WebDataset tar shards on local disks or object storage (``docs/scale.md``).

* :class:`ShardedImages`, :class:`ShardedRGBD`: streaming sources (every rank and loader worker
  reads its own part of the shards; mid-epoch resume through :class:`ShardLoader`);
* :class:`ShardWriter` and :func:`pack_source` (``da-toolkit shards``): write shards;
* :class:`PseudoLabelShardWriter` / :class:`PseudoLabelShards`: pseudo-labels as shards;
* :class:`ShardStudentDataModule`: the student's data module over shard streams.
"""

from da_toolkit.data.shards.loader import ShardLoader
from da_toolkit.data.shards.sources import ShardedImages, ShardedRGBD
from da_toolkit.data.shards.stream import ShardStream
from da_toolkit.data.shards.writer import ShardWriter

__all__ = ["ShardLoader", "ShardStream", "ShardWriter", "ShardedImages", "ShardedRGBD"]
