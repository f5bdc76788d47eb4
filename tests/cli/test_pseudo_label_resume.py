"""Issue 15: a resumed `pseudo-label` job never reads or decodes a finished item, and the done-id
set is not copied per batch; every item is still labeled exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from da_toolkit.cli.pseudo_label import run
from da_toolkit.data.sources.base import DataSource
from da_toolkit.data.sources.synthetic import SyntheticScenes
from tests.cli.test_pseudo_label import _config, _weights

HERE = "tests.cli.test_pseudo_label_resume"


class CountingScenes(SyntheticScenes):
    """Synthetic scenes that append the index of every decoded item to ``log`` (workers too)."""

    def __init__(self, log: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.log is not None:
            with open(self.log, "a") as handle:
                handle.write(f"{index}\n")
        return super().__getitem__(index)


class CountingScenesWithoutIds(DataSource):
    """Counting scenes behind a source without ``item_id``: the resume has to decode to learn an id."""

    def __init__(self, log: str | None = None, **kwargs: Any) -> None:
        self.inner = CountingScenes(log, **kwargs)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.inner[index]


def _counting_config(tmp_path: Path, store: Path, weights: str, fmt: str, workers: int, cls: str = "CountingScenes",
                     n: int = 6) -> tuple[str, Path]:
    log = tmp_path / "decoded.txt"
    cfg = yaml.safe_load(Path(_config(tmp_path, store, weights, n=n)).read_text())
    cfg["data"]["sources"][0]["class_path"] = f"{HERE}.{cls}"
    cfg["data"]["sources"][0]["init_args"]["log"] = str(log)
    cfg["data"]["num_workers"] = workers
    if fmt == "shards":
        cfg.update({"format": "shards", "shards": {"maxcount": 2}})
    path = tmp_path / f"pl_{fmt}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), log


def _decoded(log: Path) -> list[int]:
    indices = sorted(int(line) for line in log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return indices


def _stored_ids(store: Path, fmt: str) -> list[str]:
    if fmt == "files":
        from da_toolkit.data.pseudo_store import read_manifest

        return [e["id"] for shard in store.iterdir() if shard.is_dir() for e in read_manifest(shard)]
    from da_toolkit.data.shards.pseudo import read_store_indexes

    return [i for index in read_store_indexes(str(store)).values() for e in index["shardlist"] for i in e["ids"]]


@pytest.mark.parametrize(("fmt", "workers"), [("files", 0), ("shards", 2)])
def test_a_resumed_job_decodes_none_of_the_finished_items(tmp_path: Path, fmt: str, workers: int) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    cfg, log = _counting_config(tmp_path, store, weights, fmt, workers)
    first = run(["--config", cfg, "--trainer.limit_predict_batches", "1"])  # "killed" after one batch of 2
    assert first["written"] == 2
    done = set(_stored_ids(store, fmt))
    assert len(done) == 2
    first_decoded = _decoded(log)
    assert len(first_decoded) >= 2  # (loader workers may read ahead of the killed loop)
    assert run(["--config", cfg])["written"] == 4
    resumed = _decoded(log)
    finished = {int(i.rsplit("/", 1)[1]) for i in done}
    assert sorted(resumed) == sorted(set(range(6)) - finished)  # each item to do once, no finished one
    assert run(["--config", cfg])["written"] == 0
    assert _decoded(log) == []  # a finished store: nothing read at all
    ids = _stored_ids(store, fmt)
    assert sorted(ids) == [f"seed7/{i:08d}" for i in range(6)]  # exactly once


def test_a_source_without_item_ids_is_decoded_then_skipped_with_a_warning(tmp_path: Path) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    cfg, log = _counting_config(tmp_path, store, weights, "files", 0, cls="CountingScenesWithoutIds", n=4)
    assert run(["--config", cfg, "--trainer.limit_predict_batches", "1"])["written"] == 2
    _decoded(log)
    with pytest.warns(UserWarning, match="has no item_id"):
        assert run(["--config", cfg])["written"] == 2
    assert _decoded(log) == [0, 1, 2, 3]  # the fallback reads the finished ones too
    assert sorted(_stored_ids(store, "files")) == [f"seed7/{i:08d}" for i in range(4)]


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_the_writers_never_copy_the_done_set_per_batch(tmp_path: Path, fmt: str, monkeypatch) -> None:
    from da_toolkit.data.pseudo_store import PseudoLabelWriter
    from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter

    def copy(self: Any) -> set[str]:
        raise AssertionError("done_ids() copies the whole set; the batch loop must use is_done()")

    weights = _weights(tmp_path / "t.safetensors")
    cfg, _ = _counting_config(tmp_path, tmp_path / "store", weights, fmt, 0, n=4)
    monkeypatch.setattr(PseudoLabelWriter, "done_ids", copy)
    monkeypatch.setattr(PseudoLabelShardWriter, "done_ids", copy)
    assert run(["--config", cfg])["written"] == 4


def test_an_item_id_that_disagrees_with_the_sample_is_refused() -> None:
    from da_toolkit.tasks.pseudo_label_data import _PreparedItems

    class Lying(CountingScenesWithoutIds):
        def item_id(self, index: int) -> str:
            return f"other/{index}"

    items = _PreparedItems(Lying(length=2, size=(8, 8), labeled=False), 14, 14, done={"other/0"})
    assert items.indices.tolist() == [1]  # filtered by item_id, before reading
    with pytest.raises(ValueError, match=r"item_id\(1\) is 'other/1' but the sample's meta id is 'seed0/00000001'"):
        items[0]
