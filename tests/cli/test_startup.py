"""Start-up cost (issue 14.8): a recipe refused before parsing imports neither torch nor Lightning.

`import lightning.pytorch` imports torchmetrics, torchvision, transformers and scipy (5 s idle,
30 s on a loaded 2-core machine); a misspelled registered name, a missing or invalid config file
are found before it. (`da-toolkit plugins` is covered in tests/test_plugins.py.)
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from da_toolkit import plugins
from da_toolkit.cli.class_paths import (
    LOWERCASE_CLASS_NAMES,
    UnknownClassPathError,
    known_class_names,
    misspelled_registered_name,
    resolve_class_path,
)

HEAVY = ("torch", "lightning", "torchmetrics", "torchvision", "timm", "numpy")

_RUN = """
import sys
from da_toolkit.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
assert rc == 2, ("the recipe was not refused", rc)
print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))
"""


def _refused_imports(tmp_path: Path, *argv: str) -> tuple[list[str], str]:
    env = {k: v for k, v in os.environ.items() if k != plugins.EXTRA_ENV}
    env[plugins.AUTOLOAD_ENV] = "1"  # the built-in plugin only: installed test plugins may import torch
    out = subprocess.run([sys.executable, "-c", _RUN.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path, check=True)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1]), out.stderr


def _teacher_recipe(path: Path, loss: str) -> Path:
    path.write_text(yaml.safe_dump({
        "model": {"class_path": "TeacherTask", "init_args": {"model": "tiny", "labeled_loss": {"class_path": loss}}},
        "data": {"class_path": "DepthDataModule", "init_args": {"labeled": [{"class_path": "synthetic"}]}},
    }, sort_keys=False))
    return path


def test_a_misspelled_registered_name_is_refused_without_importing_torch(tmp_path: Path) -> None:
    recipe = _teacher_recipe(tmp_path / "typo.yaml", "affine_invariantt")
    imported, err = _refused_imports(tmp_path, "fit", "--config", str(recipe))
    assert imported == []
    assert f"{recipe}: model.init_args.labeled_loss.class_path: unknown class_path 'affine_invariantt'" in err
    assert "did you mean affine_invariant" in err


@pytest.mark.parametrize("argv", [
    ["fit", "--config", "missing.yaml"],
    ["fit", "--config", "invalid.yaml"],
    ["fit", "--config", "recipe.yaml", "--model.init_args.labeled_loss.class_path=silogg"],
])
def test_missing_files_and_bad_arguments_are_refused_without_importing_torch(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "invalid.yaml").write_text("model: [unclosed\n")
    _teacher_recipe(tmp_path / "recipe.yaml", "affine_invariant")
    imported, err = _refused_imports(tmp_path, *argv)
    assert imported == [] and err.startswith("da-toolkit: error: ")


def test_the_cheap_check_leaves_valid_and_class_names_to_the_full_one() -> None:
    where = "model.init_args.labeled_loss.class_path"
    for value in ("affine_invariant", "AffineInvariantLoss", "L1Loss", "da_toolkit.losses.SiLogLoss", "with_epoch"):
        assert misspelled_registered_name(value, where) is None, value
    assert misspelled_registered_name("affine_invariantt", "trainer.logger.class_path") is None  # not a component key
    error = misspelled_registered_name("affine_invariantt", where)
    assert error is not None
    with pytest.raises(UnknownClassPathError) as full:  # the full check (imports everything) says the same
        resolve_class_path("affine_invariantt", where)
    assert str(full.value) == str(error)


def test_only_the_listed_classes_have_lower_case_names() -> None:
    """What makes the cheap check exact: jsonargparse's bare names start with a capital letter."""
    assert {name for name in known_class_names() if name[:1].islower()} == LOWERCASE_CLASS_NAMES


def test_a_pipeline_stage_with_a_misspelled_name_is_refused_without_importing_torch(tmp_path: Path) -> None:
    from tests.cli.pipeline_helpers import tiny_quickstart, write_recipe

    recipe = tiny_quickstart(tmp_path / "o")
    recipe["stages"]["student"]["config"]["model"]["init_args"]["feature_loss"] = {"class_path": "feature_alignmentt"}
    path = write_recipe(recipe, tmp_path / "pipe.yaml")
    imported, err = _refused_imports(tmp_path, "pipeline", "--config", str(path))
    assert imported == []
    assert err.startswith(f"da-toolkit pipeline: error: {path}: stages.student.config.model.init_args.feature_loss"
                          ".class_path: unknown class_path 'feature_alignmentt'")


def test_pseudo_label_refuses_a_misspelled_source_without_importing_torch(tmp_path: Path) -> None:
    job = tmp_path / "pl.yaml"
    job.write_text(yaml.safe_dump({"store": str(tmp_path / "store"), "model": {"teacher": "teacher.ckpt"},
                                   "data": {"sources": [{"class_path": "synthetik"}]}}))
    imported, err = _refused_imports(tmp_path, "pseudo-label", "--config", str(job))
    assert imported == []
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 2 and "synthetik" in lines[0] and str(job) in lines[0]
    assert not (tmp_path / "store").exists()
