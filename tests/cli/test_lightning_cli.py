"""LightningCLI wiring: registered names, errors before work, --help, resuming with --ckpt_path last."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from da_toolkit.cli.class_paths import UnknownClassPathError, resolve_class_path, resolve_config
from da_toolkit.cli.lightning_cli import preprocess_args, run_lightning_cli


def _teacher_config(root: Path, steps: int, every: int = 1) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "default_root_dir": str(root),
                    "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "callbacks": [{"class_path": "ModelCheckpoint", "init_args": {"every_n_train_steps": every}}]},
        "model": {"class_path": "TeacherTask",
                  "init_args": {"model": "tiny", "labeled_loss": {"class_path": "affine_invariant"},
                                "optim": {"encoder_lr": 1.0e-4}}},
        "data": {"class_path": "DepthDataModule",
                 "init_args": {"labeled": [{"class_path": "synthetic",
                                            "init_args": {"length": 8, "size": [42, 56], "seed": 0}}],
                               "crop_size": 28, "batch_size": 2}},
    }


def _write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_registered_names_resolve_to_their_classes() -> None:
    from da_toolkit.losses import AffineInvariantLoss

    assert resolve_class_path("affine_invariant", "x") == "da_toolkit.losses.affine_invariant.AffineInvariantLoss"
    assert resolve_class_path("TeacherTask", "x") == "TeacherTask"  # bare names left to jsonargparse
    cfg = resolve_config({"a": [{"class_path": "cutmix", "init_args": {"p": 0.5}}]})
    assert cfg["a"][0]["class_path"] == "da_toolkit.perturb.cutmix.CutMix"
    assert AffineInvariantLoss.__name__ in resolve_class_path("affine_invariant", "x")


# suggestions come from the kind the key names (a loss under labeled_loss), else from the
# registered names and the toolkit's/Lightning's classes (issue 14.4)
@pytest.mark.parametrize(("name", "close", "where"), [
    ("afine_invariant", "affine_invariant", "model.init_args.labeled_loss.class_path"),
    ("TeacherTsk", "TeacherTask", "model.class_path"),
    ("da_toolkit.tasks.StudntTask", "StudentTask", "model.class_path"),
])
def test_unknown_names_list_close_matches(name: str, close: str, where: str) -> None:
    with pytest.raises(UnknownClassPathError, match=close) as err:
        resolve_class_path(name, where)
    assert where in str(err.value)


def test_bad_recipe_fails_before_any_work(tmp_path: Path, capsys) -> None:
    cfg = _teacher_config(tmp_path / "run", 1)
    cfg["model"]["init_args"]["labeled_loss"]["class_path"] = "affine_invariantt"
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--config", _write(tmp_path / "c.yaml", cfg)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "affine_invariant" in err and "labeled_loss" in err
    assert not (tmp_path / "run").exists()
    cfg = _teacher_config(tmp_path / "run", 1)
    cfg["model"]["init_args"]["gradient_weight"] = "heavy"  # wrong type: jsonargparse names the key
    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", "--config", _write(tmp_path / "c2.yaml", cfg)])
    assert "gradient_weight" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_cli_class_path_arguments_are_resolved(tmp_path: Path) -> None:
    out = preprocess_args(["fit", "--model.init_args.labeled_loss.class_path", "affine_invariant"], str(tmp_path))
    assert out == ["fit", "--model.init_args.labeled_loss.class_path=da_toolkit.losses.affine_invariant.AffineInvariantLoss"]


def test_help_documents_task_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--model.help", "StudentTask"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("feature_loss", "cutmix", "perturbation", "teacher", "encoder_lr", "nonfinite",
                   "model", "frozen_encoder"):
        assert option in out, option


def test_fit_resumes_from_last_checkpoint(tmp_path: Path) -> None:
    root = tmp_path / "run"
    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "a.yaml", _teacher_config(root, 2))])
    assert cli.trainer.global_step == 2
    last = root / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2
    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "b.yaml", _teacher_config(root, 3)),
                             "--ckpt_path", "last"])
    assert cli.trainer.global_step == 3
    assert cli.trainer.ckpt_path is not None and Path(cli.trainer.ckpt_path).name.startswith("last")
    assert torch.load(last, weights_only=False)["global_step"] == 3


def test_test_subcommand_logs_test_metrics(tmp_path: Path) -> None:
    cfg = _teacher_config(tmp_path / "run", 1)
    cfg["data"]["init_args"]["test"] = [{"class_path": "synthetic",
                                         "init_args": {"length": 2, "size": [42, 56], "seed": 5}}]
    cli = run_lightning_cli(["test", "--config", _write(tmp_path / "t.yaml", cfg)])
    metrics = cli.trainer.callback_metrics
    assert {"test/abs_rel", "test/delta1", "test/rmse"} <= set(metrics)
    assert 0.0 <= float(metrics["test/delta1"]) <= 1.0


def test_validate_subcommand_logs_val_metrics_of_a_checkpoint(tmp_path: Path) -> None:
    cfg = _teacher_config(tmp_path / "run", 1)
    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "f.yaml", cfg)])
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    cfg["data"]["init_args"]["val"] = [{"class_path": "synthetic",
                                        "init_args": {"length": 2, "size": [42, 56], "seed": 5}}]
    cfg["trainer"]["limit_val_batches"] = 1.0
    cli = run_lightning_cli(["validate", "--config", _write(tmp_path / "v.yaml", cfg), "--ckpt_path", str(last)])
    metrics = cli.trainer.callback_metrics
    assert {"val/abs_rel", "val/delta1", "val/rmse"} <= set(metrics)
    assert 0.0 <= float(metrics["val/delta1"]) <= 1.0
    assert Path(cli.trainer.ckpt_path) == last  # the trained weights were validated
    assert not list((tmp_path / "run" / "checkpoints").glob("*v1*"))  # validate writes no checkpoint


def test_missing_files_are_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(["fit", "--config", str(tmp_path / "nope.yaml")])
    assert exc.value.code == 2 and "nope.yaml" in capsys.readouterr().err
    cfg = _teacher_config(tmp_path / "run", 1)
    cfg["model"]["init_args"]["model"] = {"preset": "tiny", "encoder_weights": str(tmp_path / "missing_dinov2.pth")}
    with pytest.raises(SystemExit) as exc:  # one line naming the file, exit 2 (no traceback)
        run_lightning_cli(["fit", "--config", _write(tmp_path / "m.yaml", cfg)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "missing_dinov2.pth" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_name_registered_by_two_plugins_is_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    import da_toolkit.plugins as plugins
    from da_toolkit.hookspecs import hookimpl

    class Clash:
        @hookimpl
        def da_toolkit_losses(self) -> dict[str, type]:
            return {"affine_invariant": torch.nn.L1Loss}

    registry = plugins.build_registry(entry_points=[], extra_plugins=[("clashing_plugin", Clash())])
    monkeypatch.setattr(plugins, "_REGISTRY", registry)
    with pytest.raises(UnknownClassPathError, match=r"clashing_plugin") as err:
        resolve_class_path("affine_invariant", "model.init_args.labeled_loss.class_path")
    assert "builtin" in str(err.value) and "labeled_loss" in str(err.value)
    # other registered names keep working
    assert resolve_class_path("silog", "x").endswith("SiLogLoss")


# ----------------------------------------------------------------------------- --help documents every option
def help_entries(text: str) -> dict[str, str]:
    """``--option -> description`` of an argparse/jsonargparse help text (usage lines excluded)."""
    out: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if m and not line.startswith("   "):
            names = [part.split()[0] for part in m.group(1).split(", ")]
            current = next((n for n in names if n.startswith("--")), names[0])
            out[current] = m.group(2) or ""
        elif current is not None and line.startswith("      "):
            out[current] += " " + line.strip()
        else:
            current = None
    return out


def undocumented(text: str) -> list[str]:
    """Options of a help text without a description (jsonargparse's ``(type: ...)`` alone is not one)."""
    return sorted(k for k, v in help_entries(text).items() if not re.sub(r"\(type:.*", "", v, flags=re.S).strip())


def test_help_checker_finds_undocumented_options() -> None:
    text = ("options:\n  -h, --help            Show this help message and exit.\n"
            "  --model.alpha ALPHA   Margin of the alignment. (type: float, default: 0.85)\n"
            "  --model.beta BETA     (type: float, default: 1.0)\n"
            "  --model.gamma GAMMA\n                        (type: int, default: 2)\n")
    assert set(help_entries(text)) == {"--help", "--model.alpha", "--model.beta", "--model.gamma"}
    assert undocumented(text) == ["--model.beta", "--model.gamma"]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        run_lightning_cli(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict"])
def test_help_of_every_lightning_subcommand_documents_every_option(command: str, capsys) -> None:
    out = _help([command, "--help"], capsys)
    entries = help_entries(out)
    for option in ("--config", "--trainer.max_steps", "--trainer.devices", "--trainer.strategy", "--model",
                   "--data", "--ckpt_path", "--seed_everything"):
        assert option in entries, option
    assert undocumented(out) == []


def _init_parameters(cls: type) -> set[str]:
    """Named ``__init__`` parameters of ``cls`` and of every base its ``**kwargs`` reach."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


@pytest.mark.parametrize(("group", "name"), [
    ("model", "TeacherTask"), ("model", "StudentTask"), ("model", "MetricTask"),
    ("data", "StudentDataModule"), ("data", "DepthDataModule"),
])
def test_model_and_data_help_documents_every_init_argument(group: str, name: str, capsys) -> None:
    import da_toolkit.data.datamodule
    import da_toolkit.data.student_datamodule
    import da_toolkit.tasks

    cls = (getattr(da_toolkit.tasks, name, None) or getattr(da_toolkit.data.datamodule, name, None)
           or getattr(da_toolkit.data.student_datamodule, name))
    out = _help(["fit", f"--{group}.help", name], capsys)
    entries = help_entries(out)
    expected = _init_parameters(cls)
    assert expected, name
    for param in expected:
        assert any(k == f"--{group}.{param}" or k.startswith(f"--{group}.{param}.") for k in entries), param
    assert undocumented(out) == []


def test_datamodule_help_documents_val_test_predict(capsys) -> None:
    assert undocumented(_help(["fit", "--data.help", "DepthDataModule"], capsys)) == []


def test_a_users_config_yaml_in_the_log_dir_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # logger: false + no default_root_dir -> Lightning's log dir is the working directory
    monkeypatch.chdir(tmp_path)
    cfg = _teacher_config(tmp_path / "run", 1)
    del cfg["trainer"]["default_root_dir"]
    cfg["trainer"]["callbacks"] = []
    cfg["trainer"]["enable_checkpointing"] = False
    mine = tmp_path / "config.yaml"
    mine.write_text(yaml.safe_dump(cfg, sort_keys=False))
    original = mine.read_text()
    with pytest.warns(UserWarning, match="not written by da-toolkit"):
        run_lightning_cli(["fit", "--config", str(mine)])
    assert mine.read_text() == original  # the user's recipe is untouched
    saved = tmp_path / "config.da-toolkit.yaml"
    assert saved.read_text().startswith("# resolved run config, written by da-toolkit")
    run_lightning_cli(["fit", "--config", str(mine)])  # a re-run overwrites only its own record
    assert mine.read_text() == original and "TeacherTask" in saved.read_text()


def test_lightning_optimizer_options_that_would_replace_the_tasks_own_are_refused(tmp_path: Path, capsys) -> None:
    """Issue 19.6: LightningCLI's --optimizer/--lr_scheduler silently replaced the task's `optim`."""
    for option in ("--optimizer=Adam", "--lr_scheduler=StepLR"):
        with pytest.raises(SystemExit) as exc:
            run_lightning_cli(["fit", "--config", _write(tmp_path / "o.yaml", _teacher_config(tmp_path / "run", 1)),
                               option])
        assert exc.value.code == 2
        assert option.split("=")[0].lstrip("-") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", "--help"])
    out = capsys.readouterr().out
    assert "--optimizer" not in out and "--lr_scheduler" not in out


def test_fit_runs_the_training_health_check(tmp_path: Path) -> None:
    from da_toolkit.tasks.health import TrainingHealthCheck

    cli = run_lightning_cli(["fit", "--config", _write(tmp_path / "h.yaml", _teacher_config(tmp_path / "run", 1))])
    assert sum(isinstance(cb, TrainingHealthCheck) for cb in cli.trainer.callbacks) == 1


def test_task_help_is_readable(capsys) -> None:
    """Issue 19.6: `--model.help TeacherTask` listed every importable nn.Module (5,652 lines)."""
    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", "--model.help", "TeacherTask"])
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 300, len(out.splitlines())
    assert "torch.nn.Bilinear" not in out and "da-toolkit plugins" in out
    for option in ("--model.labeled_loss", "--model.gradient_loss", "--model.model", "--model.optim.encoder_lr"):
        assert option in out, option
