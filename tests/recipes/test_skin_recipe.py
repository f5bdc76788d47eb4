"""``recipes/skin/student_convnext.yaml`` runs a few steps on tiny generated dermoscopy images.

The example plugin (``plugins/da-toolkit-dermoscopy``) is pip-installed, offline, into a
temporary folder put on ``PYTHONPATH`` of the ``da-toolkit fit`` subprocess (so the shared
environment is never modified). The recipe is used as shipped; only sizes, step counts and the
teacher are shrunk on the command line, the way a user overrides a recipe.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.plugin_install import install_to_target

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "skin" / "student_convnext.yaml"
PLUGIN_DIR = REPO / "plugins" / "da-toolkit-dermoscopy"
PLUGIN_ENV = ("DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD", "DA_TOOLKIT_BLOCK_PLUGINS", "DA_TOOLKIT_PLUGINS")


def write_isic_collection(root: Path) -> None:
    """``root/data/isic/{images/*.jpg, metadata.csv}`` as the recipe expects: 5 images of different
    sizes plus one CSV row whose image is missing (the recipe skips such rows)."""
    images = root / "data" / "isic" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, (h, w) in enumerate([(40, 50), (48, 64), (60, 45), (56, 56), (44, 70)]):
        yy, xx = np.mgrid[0:h, 0:w]
        lesion = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2)[..., None]
        skin = np.array([200, 150, 130]) + rng.normal(0, 8, (h, w, 3))
        img = np.where(lesion, skin * 0.45, skin).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(images / f"ISIC_{i:07d}.jpg")
        rows.append([f"ISIC_{i:07d}", "torso"])
    rows.append(["ISIC_0009999", "torso"])  # no image file
    with open(root / "data" / "isic" / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["isic_id", "anatom_site_general"])
        writer.writerows(rows)


def test_recipe_names_convnext_and_the_plugin_components() -> None:
    recipe = yaml.safe_load(RECIPE.read_text())
    args = recipe["model"]["init_args"]
    assert args["model"]["class_path"] == "DepthModel"
    assert args["model"]["init_args"]["encoder"]["class_path"] == "convnext"
    assert args["teacher"]["preset"] == "depth-anything-v2-vits"
    assert args["frozen_encoder"]["class_path"] == "convnext"
    assert args["feature_loss"]["init_args"]["margin"] == 0.85
    steps = [s["class_path"] for s in args["perturbation"]["init_args"]["steps"]]
    assert {"hair_artefacts", "illumination_shift"} <= set(steps)
    unlabeled = recipe["data"]["init_args"]["unlabeled"]
    assert [u["class_path"] for u in unlabeled] == ["dermoscopy_images"]


def test_skin_recipe_runs_a_few_steps(tmp_path: Path) -> None:
    site = install_to_target(PLUGIN_DIR, tmp_path / "install")
    work = tmp_path / "work"
    write_isic_collection(work)
    env = {k: v for k, v in os.environ.items() if k not in PLUGIN_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    script = Path(sys.executable).with_name("da-toolkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "da_toolkit.cli"]
    overrides = [
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=3",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.save_dir=logs",
        "--model.init_args.model.init_args.encoder.init_args.variant=atto",
        "--model.init_args.frozen_encoder.init_args.variant=atto",
        "--model.init_args.teacher=tiny",  # short form on the command line: the tiny ViT teacher (patch 14)
        "--model.init_args.log_images_every_n_steps=0",
        "--data.init_args.crop_size=224",  # x32 (ConvNeXt) and x14 (ViT teacher)
        "--data.init_args.batch_size=1",
        "--data.init_args.num_workers=0",
    ]
    done = subprocess.run(
        [*command, "fit", "--config", str(RECIPE), *overrides],
        capture_output=True, text=True, env=env, cwd=str(work), timeout=600,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "`Trainer.fit` stopped: `max_steps=3` reached" in output
    assert "skipped 1 row(s) without an image" in output  # missing: skip, from the plugin source

    (metrics_csv,) = (work / "logs").rglob("metrics.csv")
    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    logged = {k for row in rows for k, v in row.items() if v}
    # labeled, unlabeled (CutMix-aware, pseudo-labels from the online teacher) and feature terms
    assert {"train/loss", "train/labeled", "train/unlabeled", "train/feature"} <= logged, logged
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) == 3 and all(np.isfinite(losses))

    (last,) = (work / "runs" / "skin_student_convnext").rglob("last.ckpt")
    state = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    # the student's encoder and the alignment target are ConvNeXt (timm feature pyramid), not DINOv2
    assert any(k.startswith("model.encoder.body.stem") for k in state), sorted(state)[:10]
    assert any(k.startswith("frozen_encoder.body.stem") for k in state)
    assert not any("pos_embed" in k for k in state if k.startswith("model."))
    (config_file,) = work.rglob("config.yaml")  # LightningCLI saves the resolved config
    config = yaml.safe_load(config_file.read_text())
    unlabeled = config["data"]["init_args"]["unlabeled"][0]
    assert unlabeled["class_path"] == "da_toolkit_dermoscopy.source.DermoscopyImages"


@pytest.mark.parametrize("name", ["student_convnext.yaml"])
def test_recipe_file_is_valid_yaml(name: str) -> None:
    data = yaml.safe_load((RECIPE.parent / name).read_text())
    assert set(data) >= {"trainer", "model", "data"}
