"""Tests of the pseudo-label store: writer, resume, mismatches, reader."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.pseudo_store import (
    MANIFEST,
    PseudoLabelWriter,
    StoreMismatchError,
    checkpoint_hash,
    item_relpath,
    read_manifest,
)
from da_toolkit.data.sources.pseudo import PseudoLabelSource
from da_toolkit.data.sources.synthetic import SyntheticScenes

SETTINGS = {"input_size": 518, "model": "vits"}


def _images(tmp_path, n=3):
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_checkpoint_hash_is_sha256(tmp_path):
    p = tmp_path / "ckpt.pt"
    p.write_bytes(b"weights" * 1000)
    assert checkpoint_hash(p) == "sha256:" + hashlib.sha256(b"weights" * 1000).hexdigest()


def test_write_then_read_back(tmp_path):
    paths = _images(tmp_path)
    disp = [np.random.default_rng(i).random((4, 6)).astype(np.float32) * 10 for i in range(3)]
    with PseudoLabelWriter(tmp_path / "store", "rank0", "sha256:abc", SETTINGS) as writer:
        for i, p in enumerate(paths):
            writer.write(f"id{i}", {"path": str(p)}, disp[i])
    src = PseudoLabelSource(tmp_path / "store")
    assert len(src) == 3 and src.teacher_hash == "sha256:abc" and src.settings == SETTINGS
    for i in range(3):
        s = src[i]
        assert s["meta"]["id"] == f"id{i}" and s["depth_kind"] == "relative"
        np.testing.assert_array_equal(s["image"], np.asarray(Image.open(paths[i])))
        # float16 storage: relative error below 2^-10
        np.testing.assert_allclose(s["depth"], disp[i], rtol=2**-10, atol=0)
        assert s["depth"].dtype == np.float32 and s["valid"].all()
    stored = np.load(tmp_path / "store" / "rank0" / item_relpath("id0"))
    assert stored.dtype == np.float16


def test_float32_and_nonfinite_values_are_invalid(tmp_path):
    (p,) = _images(tmp_path, 1)
    disp = np.ones((4, 6), np.float32)
    disp[0, 0] = np.nan
    disp[1, 1] = np.inf
    with PseudoLabelWriter(tmp_path / "s", "a", "h", SETTINGS, dtype="float32") as w:
        w.write("x", {"path": str(p)}, disp[None])  # (1,H,W) is accepted
    s = PseudoLabelSource(tmp_path / "s")[0]
    assert not s["valid"][0, 0] and not s["valid"][1, 1] and s["valid"].sum() == 22
    assert np.isfinite(s["depth"]).all()


def test_resume_skips_done_and_repairs_torn_manifest(tmp_path):
    paths = _images(tmp_path)
    root = tmp_path / "store"
    with PseudoLabelWriter(root, "rank0", "h", SETTINGS) as w:
        w.write("a", {"path": str(paths[0])}, np.ones((4, 6)))
        w.write("b", {"path": str(paths[1])}, np.ones((4, 6)))
    manifest = root / "rank0" / MANIFEST
    with open(manifest, "ab") as f:
        f.write(b'{"id": "c", "fi')  # crash while appending
    (root / "rank0" / item_relpath("b")).unlink()  # a lost item file is redone
    w = PseudoLabelWriter(root, "rank0", "h", SETTINGS)
    assert w.done_ids() == {"a"}
    w.write("b", {"path": str(paths[1])}, np.full((4, 6), 2.0))
    w.write("c", {"path": str(paths[2])}, np.full((4, 6), 3.0))
    w.close()
    lines = manifest.read_bytes().splitlines()
    assert all(json.loads(line)["id"] in {"a", "b", "c"} for line in lines)
    src = PseudoLabelSource(root)
    assert [src[i]["meta"]["id"] for i in range(len(src))] == ["a", "b", "c"]
    assert src[1]["depth"][0, 0] == 2.0


def test_bad_manifest_line_in_the_middle_is_an_error(tmp_path):
    (p,) = _images(tmp_path, 1)
    with PseudoLabelWriter(tmp_path / "s", "r", "h", SETTINGS) as w:
        w.write("a", {"path": str(p)}, np.ones((4, 6)))
    manifest = tmp_path / "s" / "r" / MANIFEST
    manifest.write_bytes(b"garbage\n" + manifest.read_bytes())
    with pytest.raises(StoreMismatchError, match="line 1"):
        read_manifest(tmp_path / "s" / "r")


@pytest.mark.parametrize(
    ("teacher", "settings", "field"),
    [("other", SETTINGS, "teacher_hash"), ("h", {"input_size": 392, "model": "vits"}, "settings")],
)
def test_mismatched_resume_is_a_clear_error(tmp_path, teacher, settings, field):
    PseudoLabelWriter(tmp_path / "s", "rank0", "h", SETTINGS).close()
    with pytest.raises(StoreMismatchError, match=field):
        PseudoLabelWriter(tmp_path / "s", "rank1", teacher, settings)
    with pytest.raises(StoreMismatchError, match="rank0"):
        PseudoLabelWriter(tmp_path / "s", "rank0", teacher, settings)


def test_settings_compare_through_json(tmp_path):
    PseudoLabelWriter(tmp_path / "s", "r0", "h", {"size": (518, 518)}).close()
    PseudoLabelWriter(tmp_path / "s", "r1", "h", {"size": [518, 518]}).close()  # same settings


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="shard name"):
        PseudoLabelWriter(tmp_path, "../x", "h", {})
    w = PseudoLabelWriter(tmp_path / "s", "r", "h", {})
    with pytest.raises(ValueError, match="image_ref"):
        w.write("a", {"file": "x"}, np.ones((2, 2)))
    with pytest.raises(ValueError, match="float"):
        w.write("a", {"path": "x"}, np.ones((2, 2), dtype=np.int32))
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.write("a", {"path": "x"}, np.ones((2, 2)))


def _rank_job(root: str, rank: int, paths: list[str]) -> None:
    with PseudoLabelWriter(root, f"rank{rank}", "h", SETTINGS) as w:
        for i in range(rank, len(paths), 2):
            w.write(f"item{i}", {"path": paths[i]}, np.full((4, 6), float(i)))


def test_two_processes_write_disjoint_shards(tmp_path):
    paths = [str(p) for p in _images(tmp_path, 6)]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_rank_job, args=(str(tmp_path / "s"), r, paths)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    src = PseudoLabelSource(tmp_path / "s")
    assert len(src) == 6
    for i in range(6):
        assert src[i]["meta"]["id"] == f"item{i}" and src[i]["depth"][0, 0] == i


def test_synthetic_image_reference(tmp_path):
    scenes = SyntheticScenes(length=3, size=(12, 16), seed=5)
    with PseudoLabelWriter(tmp_path / "s", "r", "h", SETTINGS) as w:
        for i in range(3):
            sample = scenes[i]
            w.write(sample["meta"]["id"], sample["meta"]["image_ref"], np.ones((12, 16)) * i)
    src = PseudoLabelSource(tmp_path / "s")
    for i in range(3):
        got = src[i]
        np.testing.assert_array_equal(got["image"], scenes[i]["image"])
        assert got["depth"][0, 0] == i


def test_wrong_size_label_is_reported(tmp_path):
    (p,) = _images(tmp_path, 1)
    with PseudoLabelWriter(tmp_path / "s", "r", "h", SETTINGS) as w:
        w.write("a", {"path": str(p)}, np.ones((3, 3)))
    with pytest.raises(ValueError, match="3x3 but the image is 6x4"):
        PseudoLabelSource(tmp_path / "s")[0]


def test_reader_checks_teacher(tmp_path):
    PseudoLabelWriter(tmp_path / "s", "r", "h", SETTINGS).close()
    with pytest.raises(StoreMismatchError, match="expected other"):
        PseudoLabelSource(tmp_path / "s", teacher_hash="other")
    with pytest.raises(StoreMismatchError, match="no shards"):
        PseudoLabelSource(tmp_path)


def test_relative_image_path_resolves_against_the_store(tmp_path):
    store = tmp_path / "store"
    (store / "images").mkdir(parents=True)
    img = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    Image.fromarray(img).save(store / "images" / "a.png")
    with PseudoLabelWriter(store, "r", "h", SETTINGS) as w:
        w.write("a", {"path": "images/a.png"}, np.ones((4, 6)))
    np.testing.assert_array_equal(PseudoLabelSource(store)[0]["image"], img)


def test_a_shard_has_one_live_writer(tmp_path):
    first = PseudoLabelWriter(tmp_path / "s", "rank0", "h", SETTINGS)
    with pytest.raises(RuntimeError, match="another process"):
        PseudoLabelWriter(tmp_path / "s", "rank0", "h", SETTINGS)
    PseudoLabelWriter(tmp_path / "s", "rank1", "h", SETTINGS).close()  # other shards are fine
    first.close()
    PseudoLabelWriter(tmp_path / "s", "rank0", "h", SETTINGS).close()  # released on close
