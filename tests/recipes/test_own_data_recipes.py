"""The own-data recipes (docs/own_data.md) run on the real RGB-D frames of ../shared/data/rgbd.

The frames are read in place (never copied into the repository); tiny model and settings.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from da_toolkit.cli.lightning_cli import run_lightning_cli
from tests.recipes.conftest import RECIPES, tiny_trainer, write

OWN = RECIPES / "own_data"
RGBD = Path(os.environ.get("DA_TOOLKIT_SHARED", RECIPES.parent / ".." / "shared")) / "data" / "rgbd"
pytestmark = pytest.mark.skipif(not RGBD.is_dir(), reason=f"shared RGB-D fixtures not present at {RGBD}")
KITCHEN = RGBD / "7scenes_redkitchen"  # Kinect v1, millimetres, 0 and 65535 invalid
LIVING = RGBD / "icl_nuim_livingroom1_synthetic"
NYU = RGBD / "nyu_v2_demo"

RECIPE_NAMES = ["teacher_rgbd.yaml", "metric_rgbd.yaml", "photos_to_student.yaml"]


def _load(name: str) -> dict:
    return yaml.safe_load((OWN / name).read_text())


def test_every_own_data_recipe_is_tested_here() -> None:
    assert sorted(p.name for p in OWN.glob("*.yaml")) == sorted(RECIPE_NAMES)
    for name in RECIPE_NAMES:
        assert "FILL_ME" in (OWN / name).read_text()  # the user's own paths are marked


def _with_root(source: dict, root: Path) -> dict:
    out = copy.deepcopy(source)
    out["init_args"]["root"] = str(root)
    return out


@pytest.mark.parametrize("name", ["teacher_rgbd.yaml", "metric_rgbd.yaml"])
def test_the_recipes_depth_settings_read_millimetre_pngs_and_mask_both_invalid_markers(name: str) -> None:
    from da_toolkit.cli.pipeline_runner import build_source
    from da_toolkit.data.io import read_png_uint16

    labeled = _load(name)["data"]["init_args"]["labeled"][0]
    src = build_source(_with_root(labeled, KITCHEN), "labeled")
    i = [p.item_id for p in src.pairs].index("frame-000850")  # the README: this frame has 65535 pixels
    raw = read_png_uint16(src.pairs[i].depth).astype(np.float64)
    sample = src[i]
    assert (raw == 65535).any() and (raw == 0).any()
    assert not sample["valid"][raw == 65535].any() and not sample["valid"][raw == 0].any()
    metres = raw / 1000.0
    expect = (raw != 0) & (raw != 65535) & (metres >= 0.1) & (metres <= 10.0)
    np.testing.assert_array_equal(sample["valid"], expect)
    np.testing.assert_allclose(sample["depth"][expect], metres[expect], rtol=1e-6)
    assert sample["depth_kind"] == "metric"


def _tiny_data(cfg: dict) -> dict:
    data = cfg["data"]["init_args"]
    return {"labeled": [_with_root(data["labeled"][0], KITCHEN)], "val": [_with_root(data["val"][0], LIVING)],
            "crop_size": 28, "batch_size": 2, "num_workers": 0}


def test_teacher_rgbd_recipe_trains_on_real_frames(tmp_path: Path) -> None:
    cfg = _load("teacher_rgbd.yaml")
    override = {"trainer": tiny_trainer(tmp_path / "run"), "model": {"init_args": {"model": "tiny"}},
                "data": {"init_args": _tiny_data(cfg)}}
    cli = run_lightning_cli(["fit", "--config", str(OWN / "teacher_rgbd.yaml"),
                             "--config", write(tmp_path / "o.yaml", override)])
    assert cli.trainer.global_step == 2
    assert len(cli.datamodule.labeled[0]) == 30  # the 30 kitchen pairs, matched by stem
    metrics = cli.trainer.callback_metrics
    assert {"train/affine_invariant", "train/gradient_matching", "val/abs_rel"} <= set(metrics)
    assert np.isfinite(float(metrics["val/abs_rel"]))
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_metric_rgbd_recipe_trains_a_metric_head(tmp_path: Path, tiny_weights: str) -> None:
    cfg = _load("metric_rgbd.yaml")
    assert cfg["model"]["init_args"]["model"]["init_args"]["decoder"]["init_args"]["max_depth"] == 10.0
    override = {"trainer": tiny_trainer(tmp_path / "run"),
                "model": {"init_args": {"model": {"preset": "tiny", "decoder": {"max_depth": 10.0},
                                                   "encoder_weights": tiny_weights}}},
                "data": {"init_args": _tiny_data(cfg)}}
    cli = run_lightning_cli(["fit", "--config", str(OWN / "metric_rgbd.yaml"),
                             "--config", write(tmp_path / "o.yaml", override)])
    assert cli.model.output_kind == "metric" and cli.trainer.global_step == 2
    assert {"train/silog", "val/abs_rel"} <= set(cli.trainer.callback_metrics)


def test_photos_to_student_pipeline_runs_on_real_frames_and_photos(tmp_path: Path) -> None:
    from da_toolkit.cli.pipeline import main
    from da_toolkit.data.sources.pseudo import PseudoLabelSource

    recipe = _load("photos_to_student.yaml")
    out = tmp_path / "out"
    recipe["output_dir"] = str(out)
    stages = recipe["stages"]
    assert list(stages) == ["teacher", "pseudo_labels", "student"]
    assert stages["student"]["encoder_from"] == "teacher"  # no DINOv2 file needed
    for name in ("teacher", "student"):
        cfg = stages[name]["config"]
        cfg["trainer"] = {**cfg["trainer"], "accelerator": "cpu", "precision": "32-true", "max_steps": 2,
                          "enable_progress_bar": False, "callbacks": [
                              {"class_path": "ModelCheckpoint", "init_args": {"every_n_train_steps": 1,
                                                                               "save_last": True}}]}
        cfg["model"]["init_args"]["model"] = "tiny"
        data = cfg["data"]["init_args"]
        data.update(labeled=[_with_root(data["labeled"][0], KITCHEN)], crop_size=28, batch_size=2, num_workers=0)
    pl = stages["pseudo_labels"]["config"]
    pl["trainer"].update(accelerator="cpu", precision="32-true", enable_progress_bar=False)
    photos = pl["data"]["sources"][0]
    assert photos["class_path"] == "image_folder"
    pl["data"].update(sources=[_with_root(photos, LIVING / "rgb")], input_size=28, num_workers=0)
    recipe["evaluation"]["input_size"] = 28
    test_set = recipe["evaluation"]["sets"]["my_rgbd_test"]
    test_set["source"] = _with_root(test_set["source"], NYU)

    assert main(["--config", write(tmp_path / "p.yaml", recipe)]) == 0
    assert len(PseudoLabelSource(out / "pseudo_labels")) == 30  # every photo of the folder labeled
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"teacher", "student"}
    for per_set in results.values():
        assert per_set["my_rgbd_test"]["num_images"] == 3
        assert np.isfinite(per_set["my_rgbd_test"]["abs_rel"])
    student_cfg = (out / "configs" / "student.yaml").read_text()
    assert str(out / "pseudo_labels") in student_cfg and str(out / "teacher" / "final.ckpt") in student_cfg
