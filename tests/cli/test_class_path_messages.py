"""Unknown ``class_path`` messages (issue 14.4/14.5): suggestions of the right kind, failed
plugins named with their cause, bare Lightning logger names resolving like callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from da_toolkit import plugins
from da_toolkit.cli.class_paths import UnknownClassPathError, expected_kind, resolve_class_path

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


class _Dist:
    name = "derm-dist"


class _BrokenEntryPoint:
    name = "derm"
    dist = _Dist()

    def load(self) -> object:
        raise ImportError("No module named 'cv3'")


@pytest.fixture
def registry_with_a_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> plugins.Registry:
    registry = plugins.build_registry(entry_points=[_BrokenEntryPoint()])
    monkeypatch.setattr(plugins, "_REGISTRY", registry)
    yield registry
    plugins.reset()


@pytest.mark.parametrize(
    ("where", "kind"),
    [
        ("model.init_args.model.init_args.encoder.class_path", "encoders"),
        ("model.init_args.frozen_encoder.class_path", "encoders"),
        ("model.init_args.labeled_loss.class_path", "losses"),
        ("model.init_args.perturbation.init_args.steps[1].class_path", "perturbations"),
        ("data.init_args.val[0].class_path", "datasources"),
        ("trainer.logger.class_path", "loggers"),
        ("trainer.callbacks[2].class_path", "callbacks"),
        ("model.class_path", None),
    ],
)
def test_the_kind_comes_from_the_key(where: str, kind: str | None) -> None:
    assert expected_kind(where) == kind


def test_a_component_of_a_failed_plugin_names_the_plugin_and_cause(registry_with_a_broken_plugin: plugins.Registry) -> None:
    with pytest.raises(UnknownClassPathError) as info:
        resolve_class_path("derm_cnn", "model.init_args.model.init_args.encoder.class_path")
    message = str(info.value)
    assert "plugin 'derm' (distribution 'derm-dist') failed (failed to load: ImportError: No module named 'cv3')" in message
    assert "encoder.class_path" in message and "'derm_cnn'" in message
    with pytest.raises(UnknownClassPathError, match=r"plugin 'derm' failed to load \(failed to load: ImportError"):
        resolve_class_path("derm_thing", "model.init_args.something.class_path")  # kind unknown: still named


def test_suggestions_are_of_the_right_kind_not_every_imported_class() -> None:
    with pytest.raises(UnknownClassPathError) as info:
        resolve_class_path("afine_invariant", "model.init_args.labeled_loss.class_path")
    message = str(info.value)
    assert "did you mean affine_invariant" in message and "AffineInvariantLoss" in message
    assert "ExplainedVariance" not in message  # a torchmetrics class used to be suggested
    with pytest.raises(UnknownClassPathError) as info:
        resolve_class_path("Dropout1", "model.init_args.whatever.class_path")
    assert "Dropout1d" not in str(info.value)  # torch's classes are not suggested
    with pytest.raises(UnknownClassPathError, match="did you mean ModelCheckpoint"):
        resolve_class_path("ModelChekpoint", "trainer.callbacks[0].class_path")


def test_bare_lightning_logger_names_resolve_like_callbacks() -> None:
    assert resolve_class_path("CSVLogger", "trainer.logger.class_path") == "CSVLogger"
    assert resolve_class_path("TensorBoardLogger", "trainer.logger[1].class_path") == "TensorBoardLogger"
    assert resolve_class_path("ModelCheckpoint", "trainer.callbacks[0].class_path") == "ModelCheckpoint"
    with pytest.raises(UnknownClassPathError, match="not a Lightning logger; did you mean CSVLogger"):
        resolve_class_path("CSVLoger", "trainer.logger.class_path")


def test_a_recipe_naming_a_bare_logger_parses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``logger: {class_path: CSVLogger}`` in a recipe file (it used to be refused, suggesting a
    kornia class)."""
    from da_toolkit.cli.lightning_cli import run_lightning_cli

    extra = tmp_path / "logger.yaml"
    extra.write_text(f"trainer:\n  logger:\n    class_path: CSVLogger\n    init_args: {{save_dir: {tmp_path}}}\n")
    with pytest.raises(SystemExit) as done:
        run_lightning_cli(["fit", "--config", str(RECIPES / "teacher.yaml"), "--config", str(extra), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["logger"]["class_path"] == "lightning.pytorch.loggers.CSVLogger"


def test_help_of_a_component_accepts_registered_and_bare_names(tmp_path: Path) -> None:
    """``--model.init_args.model.init_args.encoder.help dinov2`` (jsonargparse wants a dotted path)."""
    from da_toolkit.cli.lightning_cli import preprocess_args
    from da_toolkit.models.encoders.dinov2 import DINOv2Encoder

    key = "--model.init_args.model.init_args.encoder.help"
    dotted = f"{DINOv2Encoder.__module__}.DINOv2Encoder"
    assert preprocess_args([key, "dinov2"], str(tmp_path)) == [f"{key}={dotted}"]
    assert preprocess_args([f"{key}=DINOv2Encoder"], str(tmp_path)) == [f"{key}={dotted}"]
    assert preprocess_args([f"{key}={dotted}"], str(tmp_path)) == [f"{key}={dotted}"]
    with pytest.raises(UnknownClassPathError, match="encoder.class_path.*did you mean dinov2"):
        preprocess_args([key, "dinov3"], str(tmp_path))
