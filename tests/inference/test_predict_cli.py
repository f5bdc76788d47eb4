"""``da-toolkit predict`` with the shipped recipes, on a tiny model and generated inputs."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit.cli import main
from da_toolkit.inference.png16 import read_png16
from da_toolkit.models.tiny import build_tiny_model
from da_toolkit.models.weights import save_weights

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
OPTS = ["--data.input_size", "28", "--data.num_workers", "0", "--trainer.accelerator", "cpu"]
TINY = ["--model.model", "tiny", *OPTS]
RANDOM_OK = ["--model.allow_random_weights", "true"]


def _make_images(root, rng):
    (root / "sub").mkdir(parents=True)
    images = {
        "a": rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
        "sub/b": rng.integers(0, 256, (40, 30, 3), dtype=np.uint8),
        "sub/c": rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
    }
    for name, im in images.items():
        Image.fromarray(im).save(root / f"{name}.png")
    (root / "sub" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    (root / "notes.txt").write_text("ignored")
    return images


def test_infer_recipe_end_to_end_and_resume(tmp_path, monkeypatch, rng):
    images = _make_images(tmp_path / "photos", rng)
    monkeypatch.chdir(tmp_path)
    ref_model = build_tiny_model().eval()
    save_weights(ref_model, tmp_path / "tiny.safetensors")
    # the file records its model: no preset, no architecture on the command line (issue 11)
    args = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "photos", *OPTS,
            "--model.init_args.model=tiny.safetensors"]
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert main(args) == 1  # one input failed: the run fails (after writing the others)
    out = tmp_path / "predictions"
    for name, im in images.items():
        depth = np.load(out / f"{name}.npy")
        assert depth.shape == im.shape[:2] and depth.dtype == np.float32
        png, meta = read_png16(out / f"{name}_depth16.png")
        step = meta["scale"]
        assert np.abs(png - depth).max() <= step / 2 + 1e-6 * np.abs(depth).max()
        assert np.array(Image.open(out / f"{name}_vis.png")).shape == (*im.shape[:2], 3)
        # batched, bucketed Lightning prediction == the model's own single-image inference
        np.testing.assert_allclose(depth, ref_model.infer_image(im, input_size=28), rtol=1e-5, atol=1e-5)
    assert not list(out.rglob("broken*"))
    assert (out / "config.yaml").is_file() and not (tmp_path / "config.yaml").exists()  # run record kept with outputs
    assert not list(out.rglob("*.tmp*"))

    # re-run: finished outputs are skipped (untouched), a deleted one is redone
    stamp = (out / "a.npy").stat().st_mtime_ns
    (out / "sub" / "c.npy").unlink()
    with pytest.warns(UserWarning, match="broken.jpg"):
        assert main([*args, "--model.max_failures", "1"]) == 0  # tolerated
    assert (out / "a.npy").stat().st_mtime_ns == stamp
    assert (out / "sub" / "c.npy").exists()


def test_predict_glob_and_ply_writer(tmp_path, monkeypatch, rng):
    _make_images(tmp_path / "photos", rng)
    monkeypatch.chdir(tmp_path)
    args = [
        "predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "photos/sub/*.png", *TINY, *RANDOM_OK,
        "--trainer.callbacks+=da_toolkit.inference.writers.PlyWriter",
        "--trainer.callbacks.output_dir=clouds", "--trainer.callbacks.hfov_deg=60",
    ]
    assert main(args) == 0
    assert sorted(p.name for p in (tmp_path / "clouds").iterdir()) == ["b.ply", "c.ply"]
    header = (tmp_path / "clouds" / "b.ply").read_bytes().split(b"end_header")[0].decode()
    assert "element vertex" in header and "property uchar red" in header  # coloured by the input image
    assert (tmp_path / "predictions" / "b.npy").exists()  # glob root photos/sub/ -> ids b, c


def test_model_short_forms_and_the_recipe_placeholder(tmp_path, monkeypatch, rng, capsys):
    """`model` is one typed DepthModel: `{preset, weights}` and a canonical override of its
    `weights` both load the file; the recipe's FILL_ME weights are a one-line error (exit 2)."""
    import torch

    from da_toolkit.inference.task import DepthPredictionTask

    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(3)
    ref = build_tiny_model().eval()
    save_weights(ref, tmp_path / "w.safetensors")
    base = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "a.png", *OPTS]

    with pytest.raises(SystemExit) as stop:  # the recipe as shipped: weights FILL_ME/...
        main(base)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("da-toolkit")]
    assert len(ours) == 1 and "FILL_ME/depth_anything_v2_vits.pth" in ours[0] and "Traceback" not in err

    forms = {
        "preset": ["--model.model", "{preset: tiny, weights: w.safetensors}"],
        "canonical": ["--model.model", "tiny", "--model.model.init_args.weights", "w.safetensors"],
    }
    expected = ref.infer_image(np.array(Image.open(tmp_path / "a.png")), input_size=28)
    for name, form in forms.items():
        shutil.rmtree(tmp_path / "predictions", ignore_errors=True)  # else the re-run skips a.png
        assert main([*base, *form]) == 0, name
        np.testing.assert_allclose(np.load(tmp_path / "predictions" / "a.npy"), expected, rtol=1e-5, atol=1e-5)

    with pytest.raises(TypeError, match="expected a DepthModel"):
        DepthPredictionTask(model="tiny")  # type: ignore[arg-type]


def test_print_config_shows_the_whole_model(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["predict", "--config", str(RECIPES / "infer.yaml"), "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    model = cfg["model"]["init_args"]["model"]
    assert model["class_path"] == "da_toolkit.models.depth_model.DepthModel"
    assert model["init_args"]["encoder"]["init_args"]["embed_dim"] == 384  # depth-anything-v2-vits
    assert model["init_args"]["weights"] == "FILL_ME/depth_anything_v2_vits.pth"
    assert not {"preset", "weights", "model_overrides"} & set(cfg["model"]["init_args"])
