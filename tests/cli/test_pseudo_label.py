"""`da-toolkit pseudo-label`: correct labels, resume after an interruption, teacher mismatch, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from da_toolkit.cli.pseudo_label import run

REPO = Path(__file__).resolve().parents[2]


def _weights(path: Path, seed: int = 0) -> str:
    from da_toolkit.models.presets import load_model
    from da_toolkit.models.weights import save_weights

    torch.manual_seed(seed)
    save_weights(load_model("tiny"), path)
    return str(path)


def _config(tmp_path: Path, store: Path, weights: str, n: int = 6, batch: int = 2) -> str:
    cfg = {"store": str(store), "dtype": "float32",
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
           "model": {"teacher": {"preset": "tiny", "weights": weights}},
           "data": {"sources": [{"class_path": "synthetic",
                                 "init_args": {"length": n, "size": [30, 45], "seed": 7, "labeled": False}}],
                    "input_size": 28, "batch_size": batch}}
    path = tmp_path / "pl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _store_items(store: Path) -> dict[str, np.ndarray]:
    from da_toolkit.data.sources.pseudo import PseudoLabelSource

    src = PseudoLabelSource(store)
    return {src[i]["meta"]["id"]: src[i]["depth"] for i in range(len(src))}


def test_labels_equal_official_inference_of_the_teacher(tmp_path: Path) -> None:
    from da_toolkit.data.sources import BUILTIN_DATASOURCES
    from da_toolkit.models.presets import load_model

    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    assert run(["--config", _config(tmp_path, store, weights)])["written"] == 6
    items = _store_items(store)
    assert len(items) == 6
    teacher = load_model("tiny", weights=weights)
    source = BUILTIN_DATASOURCES["synthetic"](length=6, size=(30, 45), seed=7, labeled=False)
    for i in range(6):
        sample = source[i]
        expected = teacher.infer_image(sample["image"], input_size=28)
        got = items[sample["meta"]["id"]]
        assert got.shape == (30, 45)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(np.abs(expected).max()))


def test_interrupted_job_resumes_and_labels_each_item_once(tmp_path: Path) -> None:
    from da_toolkit.data.pseudo_store import read_manifest

    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    cfg = _config(tmp_path, store, weights)
    first = run(["--config", cfg, "--trainer.limit_predict_batches", "1"])  # "killed" after one batch
    assert first["written"] == 2
    assert run(["--config", cfg])["written"] == 4
    assert run(["--config", cfg])["written"] == 0
    ids = [e["id"] for shard in store.iterdir() if shard.is_dir() for e in read_manifest(shard)]
    assert len(ids) == 6 and len(set(ids)) == 6


def test_another_teacher_cannot_write_into_the_store(tmp_path: Path) -> None:
    from da_toolkit.data.pseudo_store import StoreMismatchError

    store = tmp_path / "store"
    run(["--config", _config(tmp_path, store, _weights(tmp_path / "a.safetensors", 0), n=2)])
    with pytest.raises(StoreMismatchError, match="teacher_hash"):
        run(["--config", _config(tmp_path, store, _weights(tmp_path / "b.safetensors", 1), n=2)])


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    one, two = tmp_path / "one", tmp_path / "two"
    run(["--config", _config(tmp_path, one, weights, n=7, batch=1)])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "da_toolkit.cli", "pseudo-label", "--config", _config(tmp_path, two, weights, n=7, batch=1),
         "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shards = sorted(p.name for p in two.iterdir() if p.is_dir())
    assert shards == ["rank000", "rank001"]
    from da_toolkit.data.pseudo_store import read_manifest

    # each item exactly once across the two shards (raw manifests: the reader would hide repeats)
    ids = [entry["id"] for shard in shards for entry in read_manifest(two / shard)]
    assert len(ids) == len(set(ids)) == 7
    assert all(read_manifest(two / shard) for shard in shards)  # both ranks did work
    a, b = _store_items(one), _store_items(two)
    assert sorted(a) == sorted(b) and len(b) == 7
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_help_and_bad_names_before_work(tmp_path: Path, capsys) -> None:
    from da_toolkit.cli.pseudo_label import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--store", "--dtype", "--model.teacher", "--model.allow_random_weights", "--data.sources", "--data.input_size",
                   "--trainer.devices", "--format", "--shards.maxcount", "--shards.encoding", "--shards.images",
                   "--model.max_failures", "Exit status: 0"):
        assert option in out, option
    from da_toolkit.tasks.pseudo_label import PseudoLabelTask, UnlabeledImages
    from tests.cli.test_lightning_cli import _init_parameters, help_entries, undocumented

    entries = help_entries(out)
    for group, cls in (("model", PseudoLabelTask), ("data", UnlabeledImages)):
        # linked: data.store <- --store, data.store_format <- --format, data.storage_options <- --shards.storage_options
        for param in _init_parameters(cls) - {"store", "store_format", "storage_options"}:
            assert any(k == f"--{group}.{param}" or k.startswith(f"--{group}.{param}.") for k in entries), param
    assert undocumented(out) == []
    store = tmp_path / "store"
    cfg = yaml.safe_load(Path(_config(tmp_path, store, "unused.safetensors")).read_text())
    cfg["data"]["sources"][0]["class_path"] = "synthetik"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(bad)]) == 2
    assert "did you mean synthetic" in capsys.readouterr().err
    assert not store.exists()


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun_labels_every_item_once(tmp_path: Path) -> None:
    import signal
    import time

    from da_toolkit.data.pseudo_store import read_manifest

    weights = _weights(tmp_path / "t.safetensors")
    ref_store, store = tmp_path / "ref", tmp_path / "store"
    run(["--config", _config(tmp_path, ref_store, weights, n=40, batch=1)])
    cfg = _config(tmp_path, store, weights, n=40, batch=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "da_toolkit.cli", "pseudo-label", "--config", cfg]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = store / "rank000" / "manifest.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_manifest(store / "rank000"))
    assert 5 <= done_before < 40
    rerun = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ids = [e["id"] for e in read_manifest(store / "rank000")]
    assert len(ids) == len(set(ids)) == 40
    a, b = _store_items(ref_store), _store_items(store)
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def _folder_config(tmp_path: Path, store: Path, weights: str, strict: bool) -> str:
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(photos / f"ok{i}.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((3000, 2, 3), dtype=np.uint8)).save(photos / "needle.png")  # refused size
    cfg = {"store": str(store), "dtype": "float32",
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
           "model": {"teacher": weights},
           "data": {"sources": [{"class_path": "image_folder", "init_args": {"root": str(photos)}}],
                    "input_size": 518, "batch_size": 2, "strict": strict}}
    path = tmp_path / f"pl_{strict}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_bad_images_are_reported_and_the_rest_labeled(tmp_path: Path, capsys) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    store = tmp_path / "store"
    # the 3000x2 "needle" would need a 777000x518 network input: refused by the size guard
    with pytest.warns(UserWarning, match="broken.jpg"):
        result = run(["--config", _folder_config(tmp_path, store, weights, strict=False)])
    assert result["written"] == 3
    ids = sorted(_store_items(store))
    assert len(ids) == 3 and all("ok" in i for i in ids), ids
    out = capsys.readouterr().out
    assert "2 item(s) could not be labeled" in out and "broken.jpg" in out and "needle.png" in out


def test_strict_mode_stops_at_the_bad_image(tmp_path: Path) -> None:
    weights = _weights(tmp_path / "t.safetensors")
    with pytest.raises(Exception, match="broken.jpg"):
        run(["--config", _folder_config(tmp_path, tmp_path / "store", weights, strict=True)])


def test_a_dead_teacher_writes_no_store(tmp_path: Path, capsys) -> None:
    """A teacher whose prediction is constant (issue 14.1) is refused before anything is written."""
    from da_toolkit.cli.pseudo_label import main
    from da_toolkit.models.description import build_model
    from da_toolkit.models.weights import save_weights

    dead = build_model("tiny")
    head = dead.decoder.scratch.output_conv2[2]  # final 1x1 conv before the ReLU
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.5)
    save_weights(dead, tmp_path / "dead.safetensors")
    store = tmp_path / "store"
    cfg = _config(tmp_path, store, str(tmp_path / "dead.safetensors"), n=2)
    assert main(["--config", cfg]) == 2
    err = capsys.readouterr().err
    assert "predicts the constant 0.5" in err and "dead.safetensors" in err
    assert not list(store.rglob("*.npy"))


def test_a_random_teacher_is_refused_unless_allowed(tmp_path: Path, capsys) -> None:
    from da_toolkit.cli.pseudo_label import main

    store = tmp_path / "store"
    cfg = yaml.safe_load(Path(_config(tmp_path, store, "unused")).read_text())
    cfg["model"] = {"teacher": "tiny"}  # a preset, no weights
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(path)]) == 2
    assert "model.teacher: no weights were loaded" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="untrained"):
        assert run(["--config", str(path), "--model.allow_random_weights=true"])["written"] == 6
