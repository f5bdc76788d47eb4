"""``da-toolkit predict --output_dir DIR``: everything a run writes goes under DIR (issue 19.10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit.cli import main
from da_toolkit.inference.output_dir import output_dir_args
from da_toolkit.inference.writers import NpyWriter
from da_toolkit.models.tiny import build_tiny_model
from da_toolkit.models.weights import save_weights

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
OPTS = ["--data.input_size", "28", "--data.num_workers", "0", "--trainer.accelerator", "cpu"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_output_dir_argument_translation():
    assert output_dir_args(["--config", "r.yaml"]) == ["--trainer.default_root_dir=predictions", "--config", "r.yaml"]
    # given: placed last, so it wins over the configs before it
    assert output_dir_args(["--output_dir", "X", "--config", "r.yaml"]) == [
        "--config", "r.yaml", "--trainer.default_root_dir=X"]
    assert output_dir_args(["--output_dir=X"]) == ["--trainer.default_root_dir=X"]
    for bad in (["--output_dir"], ["--output_dir", "--config", "r.yaml"], ["--output_dir="],
                ["--output_dir", "a", "--output_dir", "b"]):
        with pytest.raises(ValueError, match="--output_dir"):
            output_dir_args(bad)


@pytest.mark.parametrize("logger", ["false", "true"])
def test_predict_writes_nothing_outside_output_dir(tmp_path, monkeypatch, logger):
    rng = np.random.default_rng(0)
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{name}.png")
    save_weights(build_tiny_model().eval(), tmp_path / "tiny.safetensors")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    args = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "photos", *OPTS,
            "--model.model=tiny.safetensors", "--trainer.logger", logger, "--output_dir", "runs/X"]
    assert main(args) == 0
    new = _tree(tmp_path) - before
    outside = sorted(p for p in new if not (p == "runs" or p.startswith("runs/X")))
    assert outside == []
    out = tmp_path / "runs" / "X"
    for name in ("a", "sub/b"):
        for suffix in (".npy", "_depth16.png", "_vis.png"):
            assert (out / f"{name}{suffix}").is_file(), (name, suffix)
    # the recipe's preset (Apache-2.0) was replaced by a file of unknown licence: none is inherited
    with Image.open(out / "a_depth16.png") as png:
        assert json.loads(png.text["da_toolkit"])["licence"] == "unknown"
    if logger == "false":
        assert (out / "config.yaml").is_file()
    else:  # the logger's folder defaults to the run's folder too; the config goes with it
        assert list(out.glob("lightning_logs/version_*/config.yaml"))


def test_default_output_dir_is_predictions(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / "a.png")
    monkeypatch.chdir(tmp_path)
    args = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "photos", *OPTS,
            "--model.model", "tiny", "--model.allow_random_weights", "true"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos", "predictions"]
    assert (tmp_path / "predictions" / "a.npy").is_file() and (tmp_path / "predictions" / "config.yaml").is_file()


def test_writer_with_its_own_folder_outside_the_run_warns(tmp_path):
    writer = NpyWriter(str(tmp_path / "elsewhere"))
    with pytest.warns(UserWarning, match="outside the run's folder"):
        writer.use_run_dir(tmp_path / "run")
    assert writer.output_dir == tmp_path / "elsewhere"
    inside = NpyWriter(None)
    inside.use_run_dir(tmp_path / "run")
    assert inside.output_dir == tmp_path / "run"
