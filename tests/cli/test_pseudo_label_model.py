"""Issue 14.9: the pseudo-label store records the teacher's full model description (not a preset
name), and a resume with another architecture is refused in one line naming the differing field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from da_toolkit.cli.pseudo_label import main


def _teacher(path: Path, features: int) -> tuple[str, dict]:
    """A tiny encoder+decoder teacher given as components (no preset), saved self-describing."""
    from da_toolkit.models.description import build_model, describe_model, preset_description
    from da_toolkit.models.weights import save_weights

    desc = preset_description("tiny")
    desc["init_args"]["decoder"]["init_args"]["features"] = features
    torch.manual_seed(0)
    model = build_model(desc)
    save_weights(model, path)
    return str(path), describe_model(model)


def _config(tmp_path: Path, store: Path, teacher: str, fmt: str) -> str:
    cfg = {"store": str(store), "format": fmt, "shards": {"maxcount": 2},
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
           "model": {"teacher": teacher},
           "data": {"sources": [{"class_path": "synthetic",
                                 "init_args": {"length": 2, "size": [20, 24], "seed": 3, "labeled": False}}],
                    "input_size": 28, "batch_size": 2}}
    path = tmp_path / f"pl_{Path(teacher).stem}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _recorded_model(store: Path, fmt: str) -> dict:
    if fmt == "files":
        return json.loads((store / "rank000" / "shard.json").read_text())["settings"]["model"]
    return json.loads((store / "rank000.index.json").read_text())["settings"]["model"]


@pytest.mark.parametrize("fmt", ["files", "shards"])
def test_the_store_records_the_model_and_refuses_another_architecture(tmp_path: Path, fmt: str, capsys) -> None:
    store = tmp_path / "store"
    a, desc_a = _teacher(tmp_path / "a.safetensors", features=8)
    assert main(["--config", _config(tmp_path, store, a, fmt)]) == 0
    recorded = _recorded_model(store, fmt)
    assert recorded == json.loads(json.dumps(desc_a))  # the full description, as describe_model gives it
    assert recorded["init_args"]["encoder"]["class_path"].endswith("DINOv2Encoder")
    assert recorded["init_args"]["decoder"]["init_args"]["features"] == 8
    assert "preset" not in json.dumps(recorded)
    b, _ = _teacher(tmp_path / "b.safetensors", features=16)
    capsys.readouterr()
    assert main(["--config", _config(tmp_path, store, b, fmt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line
    field = "settings.model.init_args.decoder.init_args.features"
    assert f"{field}=8" in err[0] and f"{field}=16" in err[0], err[0]
    assert err[0].startswith("da-toolkit pseudo-label: error: pseudo-label ")


def test_first_difference_names_nested_keys_list_items_and_missing_keys() -> None:
    from da_toolkit.data.pseudo_store import _ABSENT, first_difference

    a = {"model": {"init_args": {"decoder": {"out": [8, 16, 32]}, "x": 1}}}
    assert first_difference(a, json.loads(json.dumps(a)), "settings") is None
    b = {"model": {"init_args": {"decoder": {"out": [8, 16, 64]}, "x": 1}}}
    assert first_difference(a, b, "settings") == ("settings.model.init_args.decoder.out[2]", 32, 64)
    c = {"model": {"init_args": {"decoder": {"out": [8, 16, 32]}}}}
    assert first_difference(a, c, "settings") == ("settings.model.init_args.x", 1, _ABSENT)
    assert first_difference([1, 2], [1, 2, 3], "k") == ("k", [1, 2], [1, 2, 3])
