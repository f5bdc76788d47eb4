"""Issue 18: `da-toolkit pseudo-label` reads sharded image streams (local and s3://) with the
exactly-once and resume guarantees of map-style sources; a finished record is never decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from da_toolkit.cli.pseudo_label import main, run
from da_toolkit.data.shards.convert import pack_source
from da_toolkit.data.shards.pseudo import PseudoLabelShards, read_store_indexes
from da_toolkit.data.shards.sources import ShardedImages
from tests.cli.test_pseudo_label import _store_items, _weights
from tests.data.shards.conftest import SIZE

N = 7


def _write_config(path: Path, store: str, weights: str, source: dict[str, Any], fmt: str = "shards",
                  workers: int = 0, storage_options: dict | None = None, images: bool = True) -> str:
    cfg = {"store": store, "format": fmt, "dtype": "float32",
           "shards": {"maxcount": 2, "storage_options": storage_options, "images": images},
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
           "model": {"teacher": {"preset": "tiny", "weights": weights}},
           "data": {"sources": [source], "input_size": 28, "batch_size": 2, "num_workers": workers}}
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _stream(index: str, storage_options: dict | None = None) -> dict[str, Any]:
    return {"class_path": "sharded_images", "init_args": {"index": index, "storage_options": storage_options}}


def _ids(store: str, storage_options: dict | None = None) -> list[str]:
    indexes = read_store_indexes(store, storage_options)
    return [i for index in indexes.values() for entry in index["shardlist"] for i in entry["ids"]]


@pytest.fixture
def unlabeled_shards(tmp_path: Path, make_source) -> tuple[str, Any]:
    """7 unlabeled PNG samples in shards of 3 (3 3 1) with an index; and their source."""
    src = make_source(N, labeled=False)
    pack_source(src, str(tmp_path / "in"), prefix="u", maxcount=3, image_format="png", progress=False)
    return str(tmp_path / "in" / "u.index.json"), src


def test_sharded_images_are_labeled_once_like_the_folder_source_and_resume_unread(
        tmp_path: Path, unlabeled_shards, monkeypatch) -> None:
    index, src = unlabeled_shards
    weights = _weights(tmp_path / "t.safetensors")
    # the reference: the same images as a map-style source into the file store
    ref_cfg = _write_config(tmp_path / "ref.yaml", str(tmp_path / "ref"), weights, fmt="files", source={
        "class_path": "synthetic", "init_args": {"length": N, "size": list(SIZE), "seed": 0, "labeled": False}})
    assert run(["--config", ref_cfg])["written"] == N
    ref = _store_items(tmp_path / "ref")

    decoded: list[str] = []
    real_decode = ShardedImages.decode

    def counting_decode(self: ShardedImages, raw: dict[str, Any], where: str) -> dict[str, Any]:
        sample = real_decode(self, raw, where)
        decoded.append(sample["meta"]["id"])
        return sample

    monkeypatch.setattr(ShardedImages, "decode", counting_decode)
    store = str(tmp_path / "pl")
    cfg = _write_config(tmp_path / "pl.yaml", store, weights, _stream(index))
    assert run(["--config", cfg, "--trainer.limit_predict_batches", "1"])["written"] == 2  # "killed" after 1 batch
    done = set(_ids(store))
    assert len(done) == 2
    decoded.clear()
    assert run(["--config", cfg])["written"] == N - 2
    assert len(decoded) == N - 2 and not done & set(decoded)  # no finished record decoded again
    decoded.clear()
    assert run(["--config", cfg])["written"] == 0 and decoded == []
    ids = _ids(store)
    assert sorted(ids) == sorted(ref) and len(ids) == N  # exactly once, same ids as the folder source
    got = {s["meta"]["id"]: s for s in PseudoLabelShards(store, shuffle=False)}
    images = {src[i]["meta"]["id"]: src[i]["image"] for i in range(N)}
    for key, sample in got.items():
        np.testing.assert_allclose(sample["depth"], ref[key], rtol=2**-11, atol=1e-7)  # float16z of the same label
        np.testing.assert_array_equal(sample["image"], images[key])  # the record's PNG travelled unchanged


def test_two_loader_workers_split_the_records_exactly_once(tmp_path: Path, unlabeled_shards) -> None:
    index, _ = unlabeled_shards
    store = str(tmp_path / "pl")
    cfg = _write_config(tmp_path / "pl.yaml", store, _weights(tmp_path / "t.safetensors"), _stream(index), workers=2)
    assert run(["--config", cfg])["written"] == N
    ids = _ids(store)
    assert len(ids) == len(set(ids)) == N


def test_part_covers_every_record_once_for_any_layout() -> None:
    from da_toolkit.tasks.pseudo_label_data import _StreamItems

    class Fake:
        shards = [("a", 3), ("b", 0), ("c", 5)]
        storage_options: dict = {}

    items = _StreamItems([Fake()], 14, 14, done=set())
    for world in (1, 2, 3):
        for workers in (1, 2, 4):
            ranges = [items.part(r, world, w, workers) for r in range(world) for w in range(workers)]
            covered = [i for a, b in ranges for i in range(a, b)]
            assert covered == list(range(8)), (world, workers)


def test_stream_sources_need_the_shard_output_with_images(tmp_path: Path, unlabeled_shards, capsys) -> None:
    index, _ = unlabeled_shards
    weights = _weights(tmp_path / "t.safetensors")
    files = _write_config(tmp_path / "f.yaml", str(tmp_path / "f"), weights, _stream(index), fmt="files")
    assert main(["--config", files]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need the shard output (--format shards)" in err[0], err
    no_images = _write_config(tmp_path / "n.yaml", str(tmp_path / "n"), weights, _stream(index), images=False)
    assert main(["--config", no_images]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "shards.images: must be true" in err[-1], err


def test_pseudo_label_shards_through_s3_then_streamed_back_as_the_student_source(
        tmp_path: Path, s3_server, make_source) -> None:
    """Input shards on S3, pseudo-label shards written to S3 (resumed once), read back by the student's source."""
    from da_toolkit.data.shards import ShardLoader

    src = make_source(N, labeled=False)
    pack_source(src, "s3://shards/in", prefix="u", maxcount=3, image_format="png", storage_options=s3_server,
                progress=False)
    weights = _weights(tmp_path / "t.safetensors")
    store = "s3://shards/pl"
    cfg = _write_config(tmp_path / "pl.yaml", store, weights, _stream("s3://shards/in/u.index.json", s3_server),
                        storage_options=s3_server)
    assert run(["--config", cfg, "--trainer.limit_predict_batches", "2"])["written"] == 4
    assert run(["--config", cfg])["written"] == N - 4  # resumed over s3://
    import s3fs

    listed = sorted(p.rsplit("/", 1)[1] for p in s3fs.S3FileSystem(**s3_server).ls("shards/pl"))
    assert listed == ["rank000-000000.tar", "rank000-000001.tar", "rank000-000002.tar", "rank000-000003.tar",
                      "rank000.index.json"]
    ids = _ids(store, s3_server)
    assert len(ids) == len(set(ids)) == N
    stream = PseudoLabelShards(store, storage_options=s3_server, shuffle=False)
    loader = ShardLoader(stream, batch_size=2, num_workers=2, collate_fn=list)
    samples = [s for batch in loader for s in batch]
    assert sorted(s["meta"]["id"] for s in samples) == sorted(f"seed0/{i:08d}" for i in range(N))
    images = {src[i]["meta"]["id"]: src[i]["image"] for i in range(N)}
    for s in samples:
        assert s["depth_kind"] == "relative" and s["depth"].shape == SIZE and s["valid"].all()
        np.testing.assert_array_equal(s["image"], images[s["meta"]["id"]])
