"""``da-toolkit predict`` failure handling: summary + exit status, symlinked trees, non-regular
entries, colliding stems, random weights (issues 13.2-13.4, 13.9, 19.2)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit.cli import main
from da_toolkit.inference.guards import RandomWeightsError, require_trained_model
from da_toolkit.inference.inputs import InputError, discover_inputs
from da_toolkit.models.tiny import build_tiny_model
from da_toolkit.models.weights import save_weights

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _save(path: Path, rng) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "tiny.safetensors"
    save_weights(build_tiny_model().eval(), path)
    return str(path)


def _predict(path, weights, *extra):
    return ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", str(path), "--model.model", weights,
            "--data.input_size", "28", "--data.num_workers", "0",
            "--trainer.accelerator", "cpu", *extra]


def test_failed_writes_are_summarised_and_fail_the_run(tmp_path, monkeypatch, rng, weights, capsys):
    _save(tmp_path / "in" / "a.png", rng)
    _save(tmp_path / "in" / "sub" / "b.png", rng)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions" / "sub").write_text("a file where a folder must go")  # every write of b fails
    with pytest.warns(UserWarning, match="could not write"):
        rc = main(_predict("in", weights))
    out = capsys.readouterr().out
    assert rc == 1
    assert "3 failure(s) (0 input(s), 3 write(s))" in out  # npy, png16 and colormap of sub/b
    assert out.count("write ") >= 3 and "sub/b.png" in out and "NpyWriter" in out
    assert (tmp_path / "predictions" / "a.npy").is_file()  # the rest was written


def test_failed_inputs_exit_1_unless_tolerated(tmp_path, monkeypatch, rng, weights, capsys):
    _save(tmp_path / "in" / "a.png", rng)
    (tmp_path / "in" / "bad.png").write_bytes(b"not a png")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="bad.png"):
        assert main(_predict("in", weights)) == 1
    assert "input in/bad.png" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="bad.png"):
        assert main(_predict("in", weights, "--model.max_failures", "null")) == 0
    assert "tolerated" in capsys.readouterr().out


def test_glob_does_not_follow_directory_links_and_reports_the_loop(tmp_path, rng):
    root = tmp_path / "L"
    for name in ("a.png", "sub/b.png", "sub/deeper/c.png"):
        _save(root / name, rng)
    os.symlink("..", root / "sub" / "up")  # L/sub/up -> L: a loop
    with pytest.warns(UserWarning, match=r"up -> \.\. \(a loop"):
        found = discover_inputs(str(root / "**" / "*.png"))
    assert sorted(f.id for f in found) == ["a", "sub/b", "sub/deeper/c"]
    with pytest.warns(UserWarning, match="not followed"):
        assert len(discover_inputs(str(root))) == 3
    os.symlink(root / "a.png", tmp_path / "alias.png")
    with pytest.warns(UserWarning, match="predicted once"):
        both = discover_inputs([str(root / "*.png"), str(tmp_path / "alias.png")])
    assert [f.id for f in both] == ["a"]


def test_non_regular_entries_are_named_per_file_errors(tmp_path, monkeypatch, rng, weights, capsys):
    folder = tmp_path / "in"
    _save(folder / "ok.png", rng)
    os.symlink("missing.png", folder / "dangling.png")
    os.symlink("looped.png", folder / "looped.png")
    os.mkfifo(folder / "pipe.jpg")
    found = {f.id: f.error for f in discover_inputs(str(folder))}
    assert found["ok"] is None
    assert "dangling symbolic link" in found["dangling"]
    assert "symbolic link loop" in found["looped"]
    assert "FIFO" in found["pipe"]
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning):
        assert main(_predict("in", weights)) == 1  # the FIFO is never opened (would block)
    out = capsys.readouterr().out
    for name in ("dangling.png", "looped.png", "pipe.jpg"):
        assert f"input in/{name}: not a regular file" in out
    assert (tmp_path / "predictions" / "ok.npy").is_file()


def test_same_stem_is_a_one_line_error(tmp_path, monkeypatch, rng, weights, capsys):
    _save(tmp_path / "a.png", rng)
    _save(tmp_path / "b" / "a.png", rng)
    with pytest.raises(InputError, match="same outputs"):
        discover_inputs([str(tmp_path / "a.png"), str(tmp_path / "b" / "a.png")])
    monkeypatch.chdir(tmp_path)
    rc = main(["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "[a.png, b/a.png]",
               "--model.model", weights, "--data.num_workers", "0", "--data.input_size", "28",
               "--trainer.accelerator", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2
    ours = [line for line in err.splitlines() if line.startswith("da-toolkit")]
    assert len(ours) == 1 and "would write the same outputs" in ours[0]
    assert "discover_inputs" not in err and "InputError" not in err  # no traceback of the error


def test_predict_and_export_refuse_random_weights(tmp_path, monkeypatch, rng, capsys):
    _save(tmp_path / "in" / "a.png", rng)
    monkeypatch.chdir(tmp_path)
    base = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "in", "--model.model", "tiny",
            "--data.input_size", "28", "--data.num_workers", "0", "--trainer.accelerator", "cpu"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "no weights loaded" in err and "--model.allow_random_weights true" in err
    assert "--model.model.init_args.weights FILE" in err  # how to give them, in predict's own terms
    assert not (tmp_path / "predictions" / "a.npy").exists()
    assert main([*base, "--model.allow_random_weights", "true"]) == 0
    assert (tmp_path / "predictions" / "a.npy").is_file()
    with pytest.raises(RandomWeightsError, match="model.teacher"):
        require_trained_model(build_tiny_model(), where="model.teacher")
    require_trained_model(build_tiny_model(), allow_random_weights=True)
