"""Checks made when a run config is parsed, before any model or data is built (issues 13.11, 19.4)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from da_toolkit.cli.checks import RecipeError, check_crop_size
from da_toolkit.cli.lightning_cli import run_lightning_cli


def _config(root: Path, crop: int = 28, model: object = "tiny", steps: int = 1, **trainer) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "default_root_dir": str(root),
                    "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "num_sanity_val_steps": 0, **trainer},
        "model": {"class_path": "TeacherTask", "init_args": {"model": model, "log_images_every_n_steps": 0}},
        "data": {"class_path": "DepthDataModule",
                 "init_args": {"labeled": [{"class_path": "synthetic",
                                            "init_args": {"length": 4, "size": [42, 56], "seed": 0}}],
                               "val": [{"class_path": "synthetic",
                                        "init_args": {"length": 2, "size": [42, 56], "seed": 9}}],
                               "crop_size": crop, "batch_size": 2}},
    }


def _write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_crop_size_not_a_multiple_of_the_patch_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    root = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--config", _write(tmp_path / "c.yaml", _config(root, crop=50))])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "data.init_args.crop_size: 50 is not a multiple of 14" in err and "use 42 or 56" in err
    assert not root.exists()  # refused at parse time: no trainer, no run folder


def test_the_multiple_comes_from_the_model_not_a_literal(tmp_path: Path) -> None:
    cnn = {"class_path": "DepthModel",
           "init_args": {"encoder": {"class_path": "convnext", "init_args": {"variant": "atto"}},
                         "decoder": {"class_path": "dpt", "init_args": {"features": 16}}}}
    from da_toolkit.cli.model_forms import expand_model_value

    cfg = _config(tmp_path, crop=56, model=expand_model_value(cnn, "model"))
    with pytest.raises(RecipeError, match="crop_size: 56 is not a multiple of 32"):  # 56 = 4 x 14 is fine for a ViT
        check_crop_size(cfg)
    cfg["data"]["init_args"]["crop_size"] = 64
    check_crop_size(cfg)


def test_an_online_teacher_adds_its_multiple(tmp_path: Path) -> None:
    from da_toolkit.cli.model_forms import expand_model_value

    cnn = expand_model_value({"class_path": "DepthModel", "init_args": {
        "encoder": {"class_path": "convnext", "init_args": {"variant": "atto"}},
        "decoder": {"class_path": "dpt", "init_args": {"features": 16}}}}, "model")
    cfg = _config(tmp_path, crop=64, model=cnn)
    cfg["model"]["class_path"] = "da_toolkit.tasks.StudentTask"
    cfg["model"]["init_args"]["teacher"] = expand_model_value("tiny", "teacher")  # ViT, patch 14
    with pytest.raises(RecipeError, match=r"multiple of 224, .*need \(model.init_args.teacher: 14, model.init_args.model: 32\); use 224"):
        check_crop_size(cfg)


def test_val_check_interval_beyond_one_epoch_counts_steps(tmp_path: Path) -> None:
    """teacher.yaml's `val_check_interval: 5000` on a small data set: was a ValueError after building
    everything; now validation runs every N training steps across epochs."""
    root = tmp_path / "run"
    cfg = _config(root, steps=3, val_check_interval=3, limit_val_batches=1)  # 4 images / batch 2 = 2 per epoch
    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "v.yaml", cfg)])
    assert cli.trainer.global_step == 3
    assert cli.trainer.check_val_every_n_epoch is None
    assert "val/abs_rel" in cli.trainer.callback_metrics  # validated at step 3, in the second epoch


def test_checkpoints_record_the_model_description_and_rebuild_from_it(tmp_path: Path) -> None:
    from da_toolkit.models.description import CHECKPOINT_KEY, build_model

    root = tmp_path / "run"
    cfg = _config(root, model={"preset": "tiny", "decoder": {"max_depth": 10.0}},
                  callbacks=[{"class_path": "ModelCheckpoint", "init_args": {"every_n_train_steps": 1}}])
    cfg["model"]["class_path"] = "MetricTask"
    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "m.yaml", cfg)])
    last = root / "checkpoints" / "last.ckpt"
    desc = torch.load(last, map_location="cpu", weights_only=True)[CHECKPOINT_KEY]
    assert desc["init_args"]["decoder"]["init_args"]["max_depth"] == 10.0
    assert desc["init_args"]["weights"] is None
    rebuilt = build_model({**desc, "init_args": {**desc["init_args"], "weights": str(last)}}).eval()
    trained = cli.model.model.eval()
    x = torch.rand(1, 3, 28, 42)
    assert rebuilt.output_kind == "metric"
    torch.testing.assert_close(rebuilt(x), trained(x))
