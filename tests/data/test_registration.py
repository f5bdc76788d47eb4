"""Every built-in data source is registered through the plugin hooks under its short name."""

from __future__ import annotations

import pytest
from torch.utils.data import Dataset

from da_toolkit.data.shards import BUILTIN_SHARD_SOURCES
from da_toolkit.data.sources import BUILTIN_DATASOURCES
from da_toolkit.plugins import get_component

ALL_SOURCES = {**BUILTIN_DATASOURCES, **BUILTIN_SHARD_SOURCES}

EXPECTED = {
    "synthetic", "image_folder", "paired_folder", "nyuv2", "kitti", "diode", "sintel", "eth3d",
    "hypersim", "vkitti2", "pseudo_labels", "sharded_images", "sharded_rgbd", "pseudo_label_shards",
}


def test_builtin_names():
    assert set(ALL_SOURCES) == EXPECTED
    assert not set(BUILTIN_DATASOURCES) & set(BUILTIN_SHARD_SOURCES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registered_and_documented(name):
    cls = get_component("datasources", name)
    assert cls is ALL_SOURCES[name]
    assert issubclass(cls, Dataset)
    assert cls.__doc__ and len(cls.__doc__.strip()) > 40
