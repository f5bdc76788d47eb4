"""Refused config values are one line naming the recipe file and the full key (issue 14.4).

Before: a wrong type three class levels deep was a nested jsonargparse message ending in
"Expected a <class 'NoneType'>" with the whole config printed twice, after 45 lines of usage; a
value a constructor refused was a 100-line traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from da_toolkit.cli import main
from da_toolkit.cli.recipe_errors import from_parser_message, source_of
from tests.cli.pipeline_helpers import tiny_quickstart, without_pretrain, write_recipe

#: a tiny teacher run (DINOv2 2 blocks + DPT 16 features, 4 synthetic images)
BASE: dict[str, Any] = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 1, "logger": False,
                "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0},
    "model": {"class_path": "TeacherTask", "init_args": {
        "model": {"class_path": "DepthModel", "init_args": {
            "encoder": {"class_path": "dinov2",
                        "init_args": {"embed_dim": 32, "depth": 2, "num_heads": 2, "layer_indices": [0, 1, 1, 1]}},
            "decoder": {"class_path": "dpt", "init_args": {"features": 16, "out_channels": [8, 16, 32, 32]}}}},
        "log_images_every_n_steps": 0, "labeled_loss": {"class_path": "affine_invariant"}}},
    "data": {"class_path": "DepthDataModule", "init_args": {
        "labeled": [{"class_path": "synthetic", "init_args": {"length": 4, "size": [42, 56], "seed": 0}}],
        "crop_size": 28, "batch_size": 2}},
}


def _set(cfg: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = cfg
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value


def _recipe(tmp_path: Path, name: str, **changes: Any) -> Path:
    cfg = copy.deepcopy(BASE)
    cfg["trainer"]["default_root_dir"] = str(tmp_path / "run")
    for key, value in changes.items():
        _set(cfg, key.replace("__", "."), value)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Run a command that must refuse its config: exit 2, and the lines it printed on stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Given value" not in err and "usage:" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), err
    return lines


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("model.init_args.model.init_args.decoder.init_args.features", "sixteen", "expected int, got 'sixteen'"),
    ("data.init_args.batch_size", [1], "expected int, got [1]"),
    ("model.init_args.gradient_weight", "heavy", "expected float, got 'heavy'"),
    ("data.init_args.labeled.0.init_args.length", "x", "expected int, got 'x'"),
    ("trainer.max_steps", "ten", "expected int, got 'ten'"),
])
def test_a_wrong_type_is_one_line_with_the_file_and_the_full_key(tmp_path: Path, capsys, key: str, value: Any,
                                                                  expected: str) -> None:
    path = _recipe(tmp_path, "bad.yaml", **{key.replace(".", "__"): value})
    (line,) = _refused(["fit", "--config", str(path)], capsys)
    shown = key.replace(".0.", "[0].")
    assert line == f"da-toolkit: error: {path}: {shown}: {expected}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("key", "shown", "owner", "close"), [
    ("data.init_args.batch_sizee", "data.init_args.batch_sizee", "not an argument of DepthDataModule", "batch_size"),
    ("model.init_args.model.init_args.encoder.init_args.embed_dimm",
     "model.init_args.model.init_args.encoder.init_args.embed_dimm", "not an argument of DINOv2Encoder", "embed_dim"),
    ("trainer.max_stepz", "trainer.max_stepz", "not an option of trainer", "trainer.max_steps"),
    ("trainerr", "trainerr", "not an option of `da-toolkit fit`", "trainer"),
])
def test_an_unknown_key_is_one_line_with_a_close_match(tmp_path: Path, capsys, key: str, shown: str, owner: str,
                                                       close: str) -> None:
    path = _recipe(tmp_path, "typo.yaml", **{key.replace(".", "__"): 3})
    line, hint = _refused(["fit", "--config", str(path)], capsys)
    assert line == f"da-toolkit: error: {path}: {shown}: {owner}"
    assert hint.startswith(f"  hint: did you mean {close}")


@pytest.mark.parametrize(("key", "value", "shown", "message"), [
    ("data.init_args.crop_size", 0, "data.init_args.crop_size", "DepthDataModule.crop_size=0: expected >= 1"),
    ("model.init_args.labeled_loss.init_args", {"trim": -0.5}, "model.init_args.labeled_loss.init_args.trim",
     "AffineInvariantLoss: trim must be in [0, 1), got -0.5"),
    ("model.init_args.model.init_args.encoder.init_args.num_heads", 3, "model.init_args.model.init_args.encoder",
     "embed_dim 32 is not divisible by num_heads 3"),
    ("model.init_args.model.init_args.encoder_weights", "FILL_ME/dinov2.pth",
     "model.init_args.model.init_args.encoder_weights", "FileNotFoundError: weights not found: FILL_ME/dinov2.pth"),
    ("data.init_args.labeled.0", {"class_path": "image_folder", "init_args": {"root": "/nonexistent/images"}},
     "data.init_args.labeled[0].init_args.root",
     "FileNotFoundError: image folder /nonexistent/images does not exist or is not a folder"),
    ("trainer.accelerator", "mps", "trainer", "MisconfigurationException: `MPSAccelerator` can not run"),
])
def test_a_value_a_constructor_refuses_is_one_line_naming_the_key(tmp_path: Path, capsys, key: str, value: Any,
                                                                   shown: str, message: str) -> None:
    path = _recipe(tmp_path, "refused.yaml", **{key.replace(".", "__"): value})
    (line,) = _refused(["fit", "--config", str(path)], capsys)
    assert line.startswith(f"da-toolkit: error: {path}: {shown}: {message}")  # no "Seed set to 0" above it either


def test_a_negative_margin_of_the_students_feature_loss(tmp_path: Path, capsys) -> None:
    cfg = copy.deepcopy(BASE)
    cfg["trainer"]["default_root_dir"] = str(tmp_path / "run")
    cfg["model"] = {"class_path": "StudentTask", "init_args": {
        "model": cfg["model"]["init_args"]["model"], "log_images_every_n_steps": 0,
        "feature_loss": {"class_path": "feature_alignment", "init_args": {"margin": -2.0}}}}
    cfg["data"]["class_path"] = "StudentDataModule"
    cfg["data"]["init_args"]["unlabeled"] = [{"class_path": "synthetic", "init_args": {"length": 4, "size": [42, 56],
                                                                                     "labeled": False}}]
    path = tmp_path / "student.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (line,) = _refused(["fit", "--config", str(path)], capsys)
    assert line.startswith(f"da-toolkit: error: {path}: model.init_args.feature_loss.init_args.margin: ")
    assert "margin must be in [-1, 1], got -2.0" in line


def test_the_index_of_a_list_element_is_found(tmp_path: Path, capsys) -> None:
    second = {"class_path": "synthetic", "init_args": {"length": 4, "size": [42, 56], "seed": "one"}}
    path = _recipe(tmp_path, "two.yaml", data__init_args__labeled=[BASE["data"]["init_args"]["labeled"][0], second])
    (line,) = _refused(["fit", "--config", str(path)], capsys)
    assert f"{path}: data.init_args.labeled[1].init_args.seed: expected int, got 'one'" in line


def test_the_file_or_argument_that_set_the_key_is_named(tmp_path: Path, capsys) -> None:
    recipe = _recipe(tmp_path, "recipe.yaml")
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"data": {"init_args": {"batch_size": "two"}}}))
    (line,) = _refused(["fit", "--config", str(recipe), "--config", str(override)], capsys)
    assert line == f"da-toolkit: error: {override}: data.init_args.batch_size: expected int, got 'two'"
    (line,) = _refused(["fit", "--config", str(recipe), "--data.init_args.batch_size=three"], capsys)
    assert line == "da-toolkit: error: --data.init_args.batch_size: data.init_args.batch_size: expected int, got 'three'"


def test_source_of_prefers_the_deepest_then_the_latest(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump({"model": {"init_args": {"model": "tiny", "gradient_weight": 1.0}}}))
    b.write_text(yaml.safe_dump({"model": {"class_path": "TeacherTask"}}))
    args = ["--config", str(a), "--config", str(b)]
    assert source_of("model.init_args.model.init_args.decoder.init_args.features", args) == str(a)
    assert source_of("model.class_path", args) == str(b)
    assert source_of("model.init_args.gradient_weight", [*args, "--model.init_args.gradient_weight=2"]) \
        == "--model.init_args.gradient_weight"
    assert source_of("trainer.max_steps", args) == ""


def test_parser_messages_of_jsonargparse_are_read() -> None:
    """The message shapes jsonargparse 4.53 produces (a literal, a required key)."""
    literal = ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Errors:\n'
               "    - Problem with given class_path 'da_toolkit.tasks.TeacherTask':\n"
               '        Parser key "optim.optimizer":\n'
               "          Expected a typing.Literal['adamw', 'adam', 'sgd']. Got value: adamx\n"
               "    - Expected a <class 'NoneType'>\n  Given value type: <class 'dict'>\n  Given value: {...}")
    error = from_parser_message(literal)
    assert (error.key, error.detail) == ("model.init_args.optim.optimizer", "expected one of 'adamw', 'adam', 'sgd', got 'adamx'")
    error = from_parser_message('Key "data.init_args.labeled" is required but not included in config object')
    assert (error.key, error.detail) == ("data.init_args.labeled", "required, not given")


def test_a_pipeline_stage_names_the_recipe_and_the_stage(tmp_path: Path, capsys) -> None:
    """A parse error is found before anything runs; a refused value when its stage starts."""
    recipe = tiny_quickstart(tmp_path / "o")
    recipe["stages"]["student"]["config"]["data"]["init_args"]["batch_size"] = [1]
    path = write_recipe(recipe, tmp_path / "pipe.yaml")
    assert main(["pipeline", "--config", str(path)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == f"da-toolkit pipeline: error: {path}: stages.student.config.data.init_args.batch_size: expected int, got [1]"
    recipe = without_pretrain(tiny_quickstart(tmp_path / "o"))
    teacher = recipe["stages"]["teacher"]
    teacher["config"]["model"]["init_args"]["labeled_loss"] = {"class_path": "affine_invariant", "init_args": {"trim": 2}}
    path = write_recipe(recipe, tmp_path / "pipe2.yaml")
    assert main(["pipeline", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"da-toolkit pipeline: error: {path}: stages.teacher.config.model.init_args.labeled_loss.init_args.trim: "
            "AffineInvariantLoss: trim must be in [0, 1), got 2.0") in err.splitlines()


def test_pseudo_label_names_the_job_file_and_key(tmp_path: Path, capsys) -> None:
    job = {"model": {"teacher": "tiny"},
           "data": {"sources": [{"class_path": "synthetic", "init_args": {"length": 2, "size": [42, 56]}}],
                    "input_size": "big"},
           "trainer": {"accelerator": "cpu", "devices": 1}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    assert main(["pseudo-label", "--config", str(path), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"da-toolkit pseudo-label: error: {path}: data.input_size: expected int, got 'big'"]
