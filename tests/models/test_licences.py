"""Licences of weights travel with models (issue 19.9): presets -> model -> .ckpt / safetensors -> load_model."""

from __future__ import annotations

import logging

import pytest
import torch

from da_toolkit.models import PRESETS, build_model, describe_model, load_model
from da_toolkit.models import preset_table as preset_table_module
from da_toolkit.models.licence import (
    LICENCE_LOGGER,
    NOASSERTION,
    is_restricted,
    licence_notice,
    provenance,
    reset_notices,
)
from da_toolkit.models.preset_table import CC_BY_NC, Preset
from da_toolkit.models.weights import read_weights, save_weights

VITB = "depth-anything-v2-vitb"
VITS = "depth-anything-v2-vits"


@pytest.fixture(autouse=True)
def _fresh_notices():
    reset_notices()
    yield
    reset_notices()


def _tiny_like(name: str) -> Preset:
    """The preset ``name`` with the tiny architecture (its licence and origin kept): builds in ms."""
    real = PRESETS[name]
    tiny = PRESETS["tiny"].description()
    tiny["init_args"].update(licence=real.model["init_args"]["licence"], origin=name)
    return Preset(name, tiny, real.licence, real.text)


@pytest.fixture
def tiny_presets(monkeypatch):
    for name in (VITB, VITS):
        monkeypatch.setitem(PRESETS, name, _tiny_like(name))
        monkeypatch.setitem(preset_table_module.PRESETS, name, PRESETS[name])


def _tiny_weights(tmp_path, name="w.safetensors"):
    torch.manual_seed(0)
    model = build_model("tiny")  # carries no licence: the file records none
    path = tmp_path / name
    save_weights(model, path)
    assert "licence" not in read_weights(path).description["init_args"]
    return path, model


def _notices(caplog):
    return [r for r in caplog.records if r.name == LICENCE_LOGGER]


def test_restricted_licences_and_notice_text():
    assert not is_restricted("Apache-2.0") and not is_restricted(None) and not is_restricted("MIT")
    assert is_restricted(CC_BY_NC) and is_restricted(NOASSERTION)
    assert licence_notice("Apache-2.0", VITS) is None and licence_notice(None) is None
    text = licence_notice(CC_BY_NC, VITB)
    assert "\n" not in text and CC_BY_NC in text and VITB in text and "non-commercial" in text
    assert "no licence is stated upstream" in licence_notice(NOASSERTION, "depth-anything-v2-metric-vkitti-vits")


def test_every_preset_model_carries_its_licence_and_name():
    for name, preset in PRESETS.items():
        init = preset.model["init_args"]
        if name == "tiny":
            assert "licence" not in init and "origin" not in init  # no weights exist
            continue
        assert init["licence"] == preset.licence and init["origin"] == name, name
    # the metric Small checkpoints: upstream states no licence (preset_table.py cites where)
    for dataset in ("hypersim", "vkitti"):
        assert PRESETS[f"depth-anything-v2-metric-{dataset}-vits"].licence == NOASSERTION
        assert PRESETS[f"depth-anything-v2-metric-{dataset}-vitb"].licence == CC_BY_NC


def test_loading_a_v2b_preset_model_shows_the_notice_once(tiny_presets, tmp_path, caplog):
    path, _ = _tiny_weights(tmp_path)
    with caplog.at_level(logging.WARNING, logger=LICENCE_LOGGER):
        model = load_model(VITB, weights=path)
    assert model.licence == CC_BY_NC and model.origin == VITB and model.weights_loaded
    (notice,) = _notices(caplog)
    assert notice.levelno == logging.WARNING and CC_BY_NC in notice.getMessage() and VITB in notice.getMessage()
    assert "\n" not in notice.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LICENCE_LOGGER):
        load_model(VITB, weights=path)  # once per process for the same weights
    assert not _notices(caplog)
    assert provenance(model) == {"licence": CC_BY_NC, "origin": VITB}


def test_permissive_unknown_and_random_models_say_nothing(tiny_presets, tmp_path, caplog):
    path, _ = _tiny_weights(tmp_path)
    with caplog.at_level(logging.DEBUG, logger=LICENCE_LOGGER):
        apache = load_model(VITS, weights=path)
        unknown = load_model(path)  # a user's own model: the file records no licence
        random_nc = load_model(VITB)  # no weights loaded: nothing of theirs is used
    assert apache.licence == "Apache-2.0" and unknown.licence is None and random_nc.licence == CC_BY_NC
    assert not _notices(caplog)
    assert provenance(unknown) == {"licence": "unknown"}
    assert "licence" not in describe_model(unknown)["init_args"]  # descriptions of unknown models unchanged


def test_the_file_record_wins_over_the_preset_and_overrides_win_over_both(tiny_presets, tmp_path):
    torch.manual_seed(0)
    own = build_model({"preset": "tiny", "licence": "MIT", "origin": "my-lab/depth-v1"})
    save_weights(own, tmp_path / "own.safetensors")
    loaded = load_model(VITB, weights=tmp_path / "own.safetensors")
    assert (loaded.licence, loaded.origin) == ("MIT", "my-lab/depth-v1")
    relabelled = load_model(tmp_path / "own.safetensors", licence="Apache-2.0")
    assert relabelled.licence == "Apache-2.0"


def test_licence_survives_fit_ckpt_load_model(tiny_presets, tmp_path, caplog):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader

    from da_toolkit.tasks.teacher import TeacherTask

    torch.manual_seed(0)
    model = build_model({"preset": VITB})  # the expanded short form carries the licence
    assert (model.licence, model.origin) == (CC_BY_NC, VITB)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 28, 42, generator=g)
    batch = {"labeled": {"image": image, "depth": 1.0 / (0.2 + image.mean(dim=1)),
                         "valid": torch.ones(2, 28, 42, dtype=torch.bool), "depth_kind": ["disparity"] * 2,
                         "meta": [{"source": "t", "id": str(i)} for i in range(2)]}}

    class _Data(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader([batch], batch_size=1, collate_fn=lambda items: items[0])

    task = TeacherTask(model=model)
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, default_root_dir=str(tmp_path))
    trainer.fit(task, _Data())
    ckpt = tmp_path / "teacher.ckpt"
    trainer.save_checkpoint(ckpt)
    recorded = read_weights(ckpt).description["init_args"]
    assert (recorded["licence"], recorded["origin"]) == (CC_BY_NC, VITB)

    reset_notices()
    with caplog.at_level(logging.WARNING, logger=LICENCE_LOGGER):
        again = load_model(ckpt)  # no preset: the .ckpt rebuilds its model, licence included
    assert (again.licence, again.origin) == (CC_BY_NC, VITB)
    assert len(_notices(caplog)) == 1
    torch.testing.assert_close(again.state_dict(), task.model.state_dict())

    save_weights(again, tmp_path / "teacher.safetensors")  # and on into our safetensors
    assert load_model(tmp_path / "teacher.safetensors").licence == CC_BY_NC


def test_backbone_only_weights_do_not_take_the_preset_licence(tiny_presets, tmp_path):
    from da_toolkit.models.loading import encoder_from_loaded

    torch.manual_seed(0)
    path = tmp_path / "backbone.pth"
    torch.save(build_model("tiny").encoder.state_dict(), path)  # a DINOv2 backbone-only file
    loaded = read_weights(path)
    assert loaded.backbone_only
    model, _ = encoder_from_loaded(loaded, VITB)
    assert model.licence is None and model.origin is None  # not the preset's released weights
