"""Helpers to run the recipes of ``recipes/`` on tiny synthetic data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"


def synthetic(n: int, seed: int = 0, labeled: bool = True) -> dict[str, Any]:
    return {"class_path": "synthetic", "init_args": {"length": n, "size": [42, 56], "seed": seed, "labeled": labeled}}


def tiny_trainer(root: Path, steps: int = 2) -> dict[str, Any]:
    return {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "max_steps": steps,
            "max_epochs": None, "default_root_dir": str(root), "log_every_n_steps": 1, "val_check_interval": steps,
            "limit_val_batches": 1, "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0}


def write(path: Path, obj: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return str(path)


@pytest.fixture()
def tiny_weights(tmp_path: Path) -> str:
    """A saved random tiny relative model (stands for a trained teacher / relative model)."""
    import torch

    from da_toolkit.models.presets import load_model
    from da_toolkit.models.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path / "tiny_relative.safetensors"
    save_weights(load_model("tiny"), path)
    return str(path)
