"""Object storage for real: a moto S3 server on 127.0.0.1, shards written and read via s3:// URLs."""

from __future__ import annotations

import numpy as np
import s3fs

from da_toolkit.data.shards import ShardedImages, ShardedRGBD, ShardLoader
from da_toolkit.data.shards.convert import pack_source


def test_pack_to_s3_and_stream_back(s3_server, make_source):
    src = make_source(9)
    result = pack_source(src, "s3://shards/rgbd", prefix="syn", maxcount=4, image_format="png",
                         storage_options=s3_server, progress=False)
    assert result == {"shards": 3, "samples": 9, "skipped": 0, "reused": 0}
    fs = s3fs.S3FileSystem(**s3_server)
    assert sorted(fs.ls("shards/rgbd")) == [
        "shards/rgbd/syn-000000.tar", "shards/rgbd/syn-000001.tar", "shards/rgbd/syn-000002.tar",
        "shards/rgbd/syn.index.json",
    ]
    ds = ShardedRGBD(index="s3://shards/rgbd/syn.index.json", storage_options=s3_server, shuffle=False)
    got = {s["meta"]["id"]: s for s in ds}
    assert len(got) == 9
    ref = src[5]
    np.testing.assert_array_equal(got[ref["meta"]["id"]]["depth"], ref["depth"])
    np.testing.assert_array_equal(got[ref["meta"]["id"]]["image"], ref["image"])


def test_brace_pattern_over_s3_with_two_workers(s3_server, make_source):
    pack_source(make_source(10, labeled=False), "s3://shards/img", prefix="u", maxcount=3,
                storage_options=s3_server, progress=False)
    ds = ShardedImages(urls="s3://shards/img/u-{000000..000003}.tar", storage_options=s3_server)
    assert [n for _, n in ds.shards] == [3, 3, 3, 1]
    loader = ShardLoader(ds, batch_size=2, num_workers=2, collate_fn=lambda b: [s["meta"]["id"] for s in b])
    ids = [i for batch in loader for i in batch]
    assert sorted(ids) == [f"seed0/{i:08d}" for i in range(10)]
