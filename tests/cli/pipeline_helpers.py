"""Shrinking the quickstart recipe to a seconds-long pipeline for tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
#: the encoder of the `tiny` preset, for stages that take an encoder alone (semantic pretraining)
TINY_ENCODER = {"class_path": "dinov2",
                "init_args": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56, "layer_indices": [0, 0, 1, 1]}}


def _shrink_sources(sources: list[dict[str, Any]], length: int) -> None:
    for src in sources:
        src["init_args"].update(length=length, size=[42, 56])


def tiny_quickstart(out: Path, steps: int = 2, n: int = 6) -> dict[str, Any]:
    """The quickstart recipe with the tiny preset, 42x56 images, ``steps`` steps per fit stage."""
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    recipe["output_dir"] = str(out)
    for stage in recipe["stages"].values():
        cfg = stage.get("config")
        if cfg is None:
            continue
        cfg["trainer"].update(max_steps=steps, enable_progress_bar=False)
        cfg["trainer"].pop("callbacks", None)
        if stage["kind"] == "fit":
            cfg["trainer"]["callbacks"] = [{"class_path": "ModelCheckpoint",
                                            "init_args": {"every_n_train_steps": 1, "save_last": True}}]
            if "encoder" in cfg["model"]["init_args"]:  # the semantic pretraining stage: tiny's encoder
                cfg["model"]["init_args"]["encoder"] = TINY_ENCODER
            else:
                cfg["model"]["init_args"]["model"] = "tiny"  # the short form, expanded by the pipeline
            data = cfg["data"]["init_args"]
            _shrink_sources(data["labeled"], n)
            data.update(crop_size=28, batch_size=2)
        else:
            cfg["trainer"].pop("max_steps")
            _shrink_sources(cfg["data"]["sources"], n)
            cfg["data"].update(input_size=28, batch_size=4)
    recipe["evaluation"]["input_size"] = 28
    for s in recipe["evaluation"]["sets"].values():
        s["source"]["init_args"].update(length=3, size=[42, 56])
    return recipe


def write_recipe(recipe: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def without_pretrain(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe without its semantic pretraining stage: stages that started from it start from
    random weights (for tests that swap in an architecture the pretrained encoder does not fit)."""
    recipe["stages"].pop("pretrain", None)
    for stage in recipe["stages"].values():
        if stage.get("encoder_from") == "pretrain":
            stage.pop("encoder_from")
    return recipe
