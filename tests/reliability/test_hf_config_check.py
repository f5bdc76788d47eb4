"""Issue 13.5: a Hugging Face folder's config.json is checked against its weights before building.

The folders are real (written by ``save_hf_folder`` from a small model); only ``config.json`` is
edited, as an attacker or a copy-paste mistake would. Nothing may be built from a config that does
not match the tensor shapes of its safetensors file, and every failure names ``config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from da_toolkit.models import load_model
from da_toolkit.models.weights import (
    WeightsError,
    WeightsMismatchError,
    read_weights,
    save_hf_folder,
)

TINY4 = {"depth": 4, "layer_indices": [0, 1, 2, 3]}  # distinct taps (the HF format needs them)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hf") / "model"
    save_hf_folder(load_model("tiny", **TINY4), folder)
    return folder


def _edited(src: Path, dst: Path, edit: dict[str, object], backbone: dict[str, object] | None = None) -> Path:
    dst.mkdir()
    for item in src.iterdir():
        (dst / item.name).symlink_to(item)
    cfg = json.loads((src / "config.json").read_text())
    cfg.update(edit)
    cfg["backbone_config"].update(backbone or {})
    (dst / "config.json").unlink()
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.fixture
def no_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a real model (on a real device) fails the test."""
    from da_toolkit.models import loading

    real = loading.build_model

    def guarded(description: object) -> object:
        if torch.empty(0).device.type != "meta":
            raise AssertionError("a model was built from a config.json that does not match its weights")
        return real(description)

    monkeypatch.setattr(loading, "build_model", guarded)


def test_an_absurd_config_is_refused_before_anything_is_built(hf_folder: Path, tmp_path: Path, no_build: None) -> None:
    bb = json.loads((hf_folder / "config.json").read_text())["backbone_config"]
    layers = 4096
    absurd = _edited(hf_folder, tmp_path / "absurd", {}, {
        "hidden_size": 65536, "num_hidden_layers": layers, "num_attention_heads": 8,
        "out_indices": [layers - 3, layers - 2, layers - 1, layers],
        "out_features": [f"stage{i}" for i in (layers - 3, layers - 2, layers - 1, layers)],
    })
    assert bb["hidden_size"] != 65536
    with pytest.raises(WeightsError) as info:
        read_weights(absurd)  # the old code read this without complaint (and then allocated 51 GB)
    text = str(info.value)
    assert str(absurd / "config.json") in text and "hidden_size is 65536" in text
    with pytest.raises(WeightsError, match="config.json"):
        load_model(absurd)


def test_a_wrong_layer_count_is_refused(hf_folder: Path, tmp_path: Path, no_build: None) -> None:
    deeper = _edited(hf_folder, tmp_path / "deeper", {}, {"num_hidden_layers": 12})
    with pytest.raises(WeightsError, match=r"config.json: backbone_config.num_hidden_layers is 12, but .* holds 4"):
        load_model(deeper)


def test_a_plausible_but_wrong_config_is_refused_naming_config_json(
    hf_folder: Path, tmp_path: Path, no_build: None
) -> None:
    cfg = json.loads((hf_folder / "config.json").read_text())
    wider = _edited(hf_folder, tmp_path / "wider", {"fusion_hidden_size": 2 * cfg["fusion_hidden_size"]},
                    {"mlp_ratio": 8})
    with pytest.raises(WeightsMismatchError) as info:
        load_model(wider)
    text = str(info.value)
    assert "config.json" in text and "shape mismatches" in text


def test_a_config_whose_model_cannot_be_built_is_a_weights_error(hf_folder: Path, tmp_path: Path) -> None:
    hidden = json.loads((hf_folder / "config.json").read_text())["backbone_config"]["hidden_size"]
    heads = next(h for h in range(3, hidden) if hidden % h)  # does not divide the width
    odd = _edited(hf_folder, tmp_path / "odd", {}, {"num_attention_heads": heads})
    with pytest.raises(WeightsError) as info:
        read_weights(odd)
    assert str(odd / "config.json") in str(info.value)


def test_a_matching_folder_still_loads_exactly(hf_folder: Path) -> None:
    src = load_model("tiny", **TINY4)
    save_hf_folder(src, hf_folder.parent / "again")
    back = load_model(hf_folder.parent / "again")
    for (k, a), (_, b) in zip(src.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
