"""Pseudo-labels as shards: 16-bit encoding bound, per-rank writers, resume, teacher checks, S3."""

from __future__ import annotations

import numpy as np
import pytest

from da_toolkit.data.pseudo_store import StoreMismatchError
from da_toolkit.data.shards.codec import (
    decode_disparity,
    decode_disparity_f16z,
    encode_disparity,
    encode_disparity_f16z,
)
from da_toolkit.data.shards.pseudo import PseudoLabelShards, PseudoLabelShardWriter

SETTINGS = {"input_size": 518, "model": "tiny"}


def _disp(i: int, shape=(12, 16)) -> np.ndarray:
    rng = np.random.default_rng(i)
    return (rng.random(shape) * (i + 1) + 0.1).astype(np.float32)


def test_png16_round_trip_within_half_a_step_and_nan_invalid():
    rng = np.random.default_rng(0)
    disp = (rng.gamma(2.0, 3.0, size=(75, 100)) + 0.01).astype(np.float32)
    disp[3, 4] = np.nan
    disp[0, 0] = np.inf
    png, (lo, hi) = encode_disparity(disp)
    out, valid = decode_disparity(png, [lo, hi], "x")
    finite = np.isfinite(disp)
    assert (valid == finite).all()
    assert lo == pytest.approx(float(disp[finite].min())) and hi == pytest.approx(float(disp[finite].max()))
    bound = (hi - lo) / 65534 / 2
    err = np.abs(out[finite].astype(np.float64) - disp[finite].astype(np.float64))
    assert err.max() <= bound * 1.001 + 1e-6 * hi  # half a step (+ float32 output rounding)
    assert err.max() > bound / 10  # it really is quantised (the test can tell)


def test_float16z_is_exactly_float16_and_keeps_nan_invalid():
    rng = np.random.default_rng(1)
    disp = (rng.gamma(2.0, 3.0, size=(30, 40)) + 0.01).astype(np.float32)
    disp[2, 2] = np.nan
    data, shape = encode_disparity_f16z(disp)
    out, valid = decode_disparity_f16z(data, shape, "x")
    finite = np.isfinite(disp)
    assert shape == [30, 40] and (valid == finite).all()
    np.testing.assert_array_equal(out[finite], disp[finite].astype(np.float16).astype(np.float32))
    rel = np.abs(out[finite] - disp[finite]) / disp[finite]
    assert rel.max() <= 2.0**-11 and rel.max() > 2.0**-14
    assert len(data) < disp.size * 2  # compressed


def test_constant_and_all_invalid_disparities():
    out, valid = decode_disparity(*encode_disparity(np.full((4, 5), 2.5, np.float32)), "x")
    assert valid.all() and np.allclose(out, 2.5)
    png, rng = encode_disparity(np.full((4, 5), np.nan, np.float32))
    out, valid = decode_disparity(png, rng, "x")
    assert not valid.any()


def _write(root, shard, ids, *, maxcount=3, teacher="sha256:t", images=True, storage_options=None, close=True,
           encoding="float16z"):
    writer = PseudoLabelShardWriter(root, shard, teacher, SETTINGS, maxcount=maxcount, image_format="png",
                                    storage_options=storage_options, encoding=encoding)
    for i in ids:
        if f"item{i}" in writer.done_ids():
            continue
        img = np.full((12, 16, 3), i, np.uint8)
        writer.write(f"item{i}", {"path": f"/nowhere/{i}.png"}, _disp(i), image=img if images else None)
    if close:
        writer.close()
    return writer


@pytest.mark.parametrize("encoding", ["float16z", "png16"])
def test_ranks_write_their_own_shards_and_the_reader_sees_each_item_once(tmp_path, encoding):
    _write(str(tmp_path), "rank000", range(0, 10, 2), encoding=encoding)
    _write(str(tmp_path), "rank001", range(1, 10, 2), encoding=encoding)
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["rank000-000000.tar", "rank000-000001.tar", "rank000.index.json",
                     "rank001-000000.tar", "rank001-000001.tar", "rank001.index.json"]
    ds = PseudoLabelShards(str(tmp_path), teacher_hash="sha256:t", shuffle=False)
    assert ds.settings == SETTINGS and len(ds) == 10
    got = {s["meta"]["id"]: s for s in ds}
    assert sorted(got) == [f"item{i}" for i in range(10)]
    s = got["item7"]
    assert s["depth_kind"] == "relative" and s["valid"].all()
    ref = _disp(7)
    if encoding == "png16":
        assert np.abs(s["depth"] - ref).max() <= (ref.max() - ref.min()) / 65534 / 2 * 1.01
    else:
        assert (np.abs(s["depth"] - ref) / ref).max() <= 2.0**-11
    assert (s["image"] == 7).all()


def test_resume_redoes_only_the_unfinished_shard(tmp_path):
    w = _write(str(tmp_path), "rank000", range(7), close=False)  # "killed": 7 written, 6 in finished shards
    w.abort()
    again = PseudoLabelShardWriter(str(tmp_path), "rank000", "sha256:t", SETTINGS, maxcount=3)
    assert again.done_ids() == {f"item{i}" for i in range(6)}
    again.close()
    _write(str(tmp_path), "rank000", range(10))
    ids = [s["meta"]["id"] for s in PseudoLabelShards(str(tmp_path), shuffle=False)]
    assert sorted(ids) == [f"item{i}" for i in range(10)]  # exactly once


def test_other_teacher_or_settings_are_refused(tmp_path):
    _write(str(tmp_path), "rank000", range(3))
    with pytest.raises(StoreMismatchError, match="teacher_hash"):
        PseudoLabelShardWriter(str(tmp_path), "rank001", "sha256:other", SETTINGS)
    with pytest.raises(StoreMismatchError, match="settings"):
        PseudoLabelShardWriter(str(tmp_path), "rank001", "sha256:t", {**SETTINGS, "input_size": 256})
    with pytest.raises(StoreMismatchError, match="encoding"):
        PseudoLabelShardWriter(str(tmp_path), "rank001", "sha256:t", SETTINGS, encoding="png16")
    with pytest.raises(StoreMismatchError, match="expected sha256:other"):
        PseudoLabelShards(str(tmp_path), teacher_hash="sha256:other")


def test_two_live_writers_cannot_share_a_name(tmp_path):
    first = PseudoLabelShardWriter(str(tmp_path), "rank000", "sha256:t", SETTINGS)
    with pytest.raises(RuntimeError, match="another process"):
        PseudoLabelShardWriter(str(tmp_path), "rank000", "sha256:t", SETTINGS)
    first.close()


def test_image_from_image_ref_when_not_stored(tmp_path, make_source):
    src = make_source(4, labeled=False)
    w = PseudoLabelShardWriter(str(tmp_path), "rank000", "sha256:t", SETTINGS, maxcount=2)
    for i in range(4):
        s = src[i]
        w.write(s["meta"]["id"], s["meta"]["image_ref"], _disp(i))
    w.close()
    got = {s["meta"]["id"]: s for s in PseudoLabelShards(str(tmp_path), shuffle=False)}
    np.testing.assert_array_equal(got["seed0/00000002"]["image"], src[2]["image"])


def test_write_and_read_pseudo_label_shards_on_s3(s3_server):
    _write("s3://shards/pseudo", "rank000", range(5), storage_options=s3_server)
    _write("s3://shards/pseudo", "rank001", range(5, 8), storage_options=s3_server)
    again = PseudoLabelShardWriter("s3://shards/pseudo", "rank000", "sha256:t", SETTINGS, maxcount=3,
                                   storage_options=s3_server)
    assert again.done_ids() == {f"item{i}" for i in range(5)}
    again.close()
    ds = PseudoLabelShards("s3://shards/pseudo", storage_options=s3_server)
    assert sorted(s["meta"]["id"] for s in ds) == [f"item{i}" for i in range(8)]


def test_the_encoder_thread_keeps_the_callers_values_and_raises_its_errors_in_the_caller(tmp_path, monkeypatch):
    """write() hands encoding + tar append to a background thread: a reused buffer must not change
    what is stored, and an error there (a full disk) must reach the caller."""
    import errno

    from da_toolkit.data.shards.writer import ShardWriter

    buf = _disp(3)
    with PseudoLabelShardWriter(str(tmp_path / "a"), "rank000", "sha256:t", SETTINGS, maxcount=2,
                                image_format="png") as w:
        for i in range(3):
            buf[:] = _disp(i)
            w.write(f"item{i}", {"path": f"/x/{i}.png"}, buf, image=np.full((12, 16, 3), i, np.uint8))
            buf[:] = -1.0  # the caller reuses its buffer at once
    got = {s["meta"]["id"]: s["depth"] for s in PseudoLabelShards(str(tmp_path / "a"), shuffle=False)}
    for i in range(3):
        assert (np.abs(got[f"item{i}"] - _disp(i)) / _disp(i)).max() <= 2.0**-11

    def full(self, item_id, members):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ShardWriter, "write", full)
    w = PseudoLabelShardWriter(str(tmp_path / "b"), "rank000", "sha256:t", SETTINGS, maxcount=2)
    w.write("item0", {"path": "/x/0.png"}, _disp(0))
    with pytest.raises(OSError, match="No space left"):
        w.flush()
    w.abort()
