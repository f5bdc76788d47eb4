"""Sharded sources: round trip, brace lists, disjoint rank/worker split, bad members."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from da_toolkit.data.robust import StrictModeError
from da_toolkit.data.shards import ShardedImages, ShardedRGBD, ShardLoader, ShardWriter
from da_toolkit.data.shards.codec import encode_sample
from da_toolkit.data.shards.stream import buffer_order


def _ids(batch: list[dict]) -> dict:
    return {"ids": [b["meta"]["id"] for b in batch]}


def test_labeled_round_trip_is_exact(rgbd_shards):
    root, src = rgbd_shards
    ds = ShardedRGBD(index=str(root / "syn.index.json"), shuffle=False)
    by_id = {s["meta"]["id"]: s for s in ds}
    assert len(by_id) == 23
    for i in (0, 7, 22):
        ref = src[i]
        got = by_id[ref["meta"]["id"]]
        np.testing.assert_array_equal(got["image"], ref["image"])  # PNG: lossless
        np.testing.assert_array_equal(got["depth"], ref["depth"])
        np.testing.assert_array_equal(got["valid"], ref["valid"])
        np.testing.assert_array_equal(got["seg"], ref["seg"])
        np.testing.assert_allclose(got["intrinsics"], ref["intrinsics"])
        assert got["depth_kind"] == "metric" and got["meta"]["image_ref"] == ref["meta"]["image_ref"]


def test_brace_pattern_lists_the_same_shards_as_the_index(rgbd_shards):
    root, _ = rgbd_shards
    by_pattern = ShardedImages(urls=str(root / "syn-{000000..000004}.tar"))
    by_index = ShardedImages(index=str(root / "syn.index.json"))
    assert by_pattern.shards == by_index.shards
    assert [n for _, n in by_pattern.shards] == [5, 5, 5, 5, 3]
    sample = next(iter(by_pattern))
    assert set(sample) - {"_shard_state"} == {"image", "meta", "intrinsics"}  # labels not decoded


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_read_disjoint_samples_once(rgbd_shards, world, workers):
    root, _ = rgbd_shards
    per_rank = []
    for rank in range(world):
        ds = ShardedRGBD(index=str(root / "syn.index.json"), seed=3, shuffle_buffer=4)
        loader = ShardLoader(ds, batch_size=2, num_workers=workers, collate_fn=_ids, rank=rank, world_size=world)
        ids = [i for b in loader for i in b["ids"]]
        assert len(loader) == -(-(23 // world) // 2)
        per_rank.append(ids)
    flat = [i for ids in per_rank for i in ids]
    assert len({len(ids) for ids in per_rank}) == 1 and len(per_rank[0]) == 23 // world  # equal counts
    assert max(Counter(flat).values()) == 1  # no sample twice
    assert len(flat) == 23 - 23 % world  # only the remainder is left out


def test_epochs_reshuffle_and_still_cover_everything(rgbd_shards):
    root, _ = rgbd_shards
    ds = ShardedRGBD(index=str(root / "syn.index.json"), seed=0, shuffle_buffer=8)
    loader = ShardLoader(ds, batch_size=4, collate_fn=_ids)
    e0 = [i for b in loader for i in b["ids"]]
    e1 = [i for b in loader for i in b["ids"]]
    assert sorted(e0) == sorted(e1) and len(set(e0)) == 23
    assert e0 != e1


def test_buffer_order_is_a_permutation_within_the_buffer_bound():
    rng = np.random.default_rng(0)
    order = buffer_order(1000, 16, rng)
    assert sorted(order.tolist()) == list(range(1000))
    # output k is never an input read later than k + buffer
    assert all(order[k] <= k + 15 for k in range(1000 - 16))
    assert (order != np.arange(1000)).sum() > 900


def _write_with_corrupt(root: Path, make_source) -> None:
    src = make_source(6, labeled=False)
    with ShardWriter(str(root), "bad", maxcount=6) as writer:
        for i in range(6):
            members = encode_sample(src[i], "jpg")
            if i == 2:
                members["jpg"] = b"not a jpeg at all"
            writer.write(src[i]["meta"]["id"], members)


def test_corrupt_member_is_a_counted_skip(tmp_path, caplog, make_source):
    _write_with_corrupt(tmp_path, make_source)
    ds = ShardedImages(index=str(tmp_path / "bad.index.json"), shuffle=False)
    loader = ShardLoader(ds, batch_size=1, collate_fn=_ids)
    ids = [i for b in loader for i in b["ids"]]
    assert ds.skipped == 1
    assert len(ids) == 6 and "seed0/00000002" not in ids  # slot refilled by the next good sample
    assert "bad-000000.tar:000000002" in caplog.text and "1 skipped so far" in caplog.text
    strict = ShardedImages(index=str(tmp_path / "bad.index.json"), shuffle=False, strict=True)
    with pytest.raises(StrictModeError, match="bad-000000.tar:000000002"):
        list(strict)


def test_truncated_shard_counts_its_lost_samples(rgbd_shards, tmp_path):
    root, _ = rgbd_shards
    shard = root / "syn-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    ds = ShardedRGBD(index=str(root / "syn.index.json"), shuffle=False)
    ids = [s["meta"]["id"] for s in ds]
    assert len(ids) == 23  # every slot filled
    assert 1 <= ds.skipped <= 5
    assert len(set(ids)) == 23 - ds.skipped


def test_tar_layout_is_webdataset(rgbd_shards):
    root, _ = rgbd_shards
    with tarfile.open(root / "syn-000000.tar") as tar:
        names = tar.getnames()
    assert set(names[:5]) == {"000000000.png", "000000000.depth.npy", "000000000.valid.png", "000000000.seg.png",
                              "000000000.json"}
    assert len(names) == 25
    # readable by webdataset's own pipeline too
    import webdataset as wds

    keys = [s["__key__"] for s in wds.WebDataset(str(root / "syn-000000.tar"), shardshuffle=False)]
    assert keys == [f"{i:09d}" for i in range(5)]


def test_random_access_is_refused_with_a_pointer_to_the_data_module(rgbd_shards):
    root, _ = rgbd_shards
    with pytest.raises(TypeError, match="ShardStudentDataModule"):
        ShardedRGBD(index=str(root / "syn.index.json"))[0]
