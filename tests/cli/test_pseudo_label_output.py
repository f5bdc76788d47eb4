"""`da-toolkit pseudo-label`: shard output, the early store lock (13.8), write failures and exit status (13.2)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import yaml

from da_toolkit.cli.pseudo_label import main, run
from tests.cli.test_pseudo_label import _config, _folder_config, _store_items, _weights


def _shard_config(tmp_path: Path, store: Path, weights: str, n: int = 6, maxcount: int = 2) -> str:
    cfg = yaml.safe_load(Path(_config(tmp_path, store, weights, n=n)).read_text())
    cfg.update({"format": "shards", "shards": {"maxcount": maxcount}})
    path = tmp_path / "pl_shards.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _shard_items(store: Path) -> dict[str, dict]:
    from da_toolkit.data.shards.pseudo import PseudoLabelShards

    return {s["meta"]["id"]: s for s in PseudoLabelShards(str(store), shuffle=False)}


def test_shard_output_equals_the_file_store_and_resumes_per_shard(tmp_path: Path) -> None:
    from da_toolkit.data.shards.prediction_writer import shard_store_done_ids
    from da_toolkit.data.shards.pseudo import read_store_indexes
    from da_toolkit.data.sources import BUILTIN_DATASOURCES

    weights = _weights(tmp_path / "t.safetensors")
    files, shards = tmp_path / "files", tmp_path / "shards"
    run(["--config", _config(tmp_path, files, weights)])
    cfg = _shard_config(tmp_path, shards, weights)
    first = run(["--config", cfg, "--trainer.limit_predict_batches", "1"])  # "killed" after one batch of 2
    assert first["written"] == 2 and len(shard_store_done_ids(str(shards))) == 2
    assert run(["--config", cfg])["written"] == 4
    assert run(["--config", cfg])["written"] == 0
    index = read_store_indexes(str(shards))["rank000"]
    ids = [i for entry in index["shardlist"] for i in entry["ids"]]
    assert len(ids) == len(set(ids)) == 6 and index["encoding"] == "float16z"
    ref, got = _store_items(files), _shard_items(shards)
    assert sorted(ref) == sorted(got)
    source = BUILTIN_DATASOURCES["synthetic"](length=6, size=(30, 45), seed=7, labeled=False)
    images = {source[i]["meta"]["id"]: source[i]["image"] for i in range(6)}
    for key, sample in got.items():
        # float16z keeps the values of a float16 store: relative error <= 2^-11 of the float32 labels
        np.testing.assert_allclose(sample["depth"], ref[key], rtol=2**-11, atol=1e-7)
        assert sample["image"].shape == images[key].shape  # the image travels in the shard (JPEG)
        assert np.abs(sample["image"].astype(int) - images[key].astype(int)).mean() < 12


def test_another_teacher_cannot_write_into_a_shard_store(tmp_path: Path, capsys) -> None:
    store = tmp_path / "shards"
    assert main(["--config", _shard_config(tmp_path, store, _weights(tmp_path / "a.safetensors", 0), n=2)]) == 0
    assert main(["--config", _shard_config(tmp_path, store, _weights(tmp_path / "b.safetensors", 1), n=2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("da-toolkit pseudo-label: error: pseudo-label shards") and "teacher_hash" in err


def _job(tmp_path: Path, fmt: str) -> tuple[Path, str]:
    """(store, job file) of a tiny job writing the ``fmt`` store with a freshly saved teacher."""
    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    return store, _config(tmp_path, store, weights) if fmt == "files" else _shard_config(tmp_path, store, weights)


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_a_second_writer_is_refused_in_one_line_before_the_teacher_loads(tmp_path: Path, fmt: str, capsys,
                                                                          monkeypatch) -> None:
    """Issue 13.8: the lock is taken first; the loser never touches the live manifest, never loads a model."""
    import da_toolkit.tasks.pseudo_label as pl
    from da_toolkit.tasks.pseudo_label import take_store_lock

    store, cfg = _job(tmp_path, fmt)
    live = take_store_lock(str(store), fmt, "rank000")  # the "winner", alive
    manifest = store / "rank000" / "manifest.jsonl"
    if fmt == "files":  # the winner is mid-append: a torn last line the loser must not cut
        manifest.write_bytes(b'{"id": "a", "file": "x.npy"}\n{"id": "b", "fi')
    before = manifest.read_bytes() if fmt == "files" else None

    def loaded(*args, **kwargs):
        raise AssertionError("the teacher was loaded although the shard is busy")

    monkeypatch.setattr(pl, "model_hash", loaded)
    try:
        assert main(["--config", cfg]) == 2
    finally:
        live.close()
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("da-toolkit pseudo-label: error: pseudo-label shard")
    assert "another process" in err[0]
    if fmt == "files":
        assert manifest.read_bytes() == before


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_a_full_disk_names_the_store_exits_1_and_a_rerun_finishes(tmp_path: Path, fmt: str, capsys,
                                                                   monkeypatch) -> None:
    """Issue 13.2: ENOSPC while writing -> one line naming the store, exit 1, no traceback; re-run completes."""
    store, cfg = _job(tmp_path, fmt)
    if fmt == "files":
        import da_toolkit.data.pseudo_store as target

        name = "atomic_save_npy"
    else:
        import da_toolkit.data.shards.urls as target

        name = "put_file_atomic"
    real = getattr(target, name)
    calls = {"n": 0}

    def full_disk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:  # the first item (file) / shard goes through, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, full_disk)
    assert main(["--config", cfg]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("da-toolkit pseudo-label: error:")]
    assert len(line) == 1 and f"pseudo-label store {store}" in line[0] and "No space left on device" in line[0]
    monkeypatch.setattr(target, name, real)  # space again
    assert main(["--config", cfg]) == 0
    ids = sorted(_store_items(store) if fmt == "files" else _shard_items(store))
    assert len(ids) == 6


def test_an_unwritable_store_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the store should go")
    weights = _weights(tmp_path / "t.safetensors")
    assert main(["--config", _config(tmp_path, blocker / "store", weights)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pseudo-label store {blocker / 'store'}" in err[0]


def test_failed_images_make_the_exit_status_1_unless_tolerated(tmp_path: Path, capsys) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    cfg = _folder_config(tmp_path, tmp_path / "store", weights, strict=False)
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert main(["--config", cfg]) == 1  # 2 bad images, max_failures 0
    captured = capsys.readouterr()
    assert "2 item(s) could not be labeled" in captured.out and "exit status 1" in captured.out
    assert "broken.jpg" in captured.out and "needle.png" in captured.out
    assert "3 item(s)" in captured.err and "2 item(s) failed" in captured.err
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert main(["--config", cfg, "--model.max_failures", "2"]) == 0
    assert "tolerated (max_failures=2)" in capsys.readouterr().out
