"""Issue 18: a pipeline's pseudo_label stage can write shards (`format: shards`); its student
stage then streams them (ShardStudentDataModule + PseudoLabelShards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from da_toolkit.cli.pipeline_runner import SHARD_STUDENT_DATA, Pipeline, PipelineConfigError
from tests.cli.pipeline_helpers import tiny_quickstart, without_pretrain


def _shard_recipe(out: Path) -> dict:
    recipe = without_pretrain(tiny_quickstart(out))
    for name in [n for n in recipe["stages"] if n not in ("teacher", "pseudo_labels", "student")]:
        recipe["stages"].pop(name)
    recipe.pop("evaluation", None)
    recipe["stages"]["pseudo_labels"]["format"] = "shards"
    return recipe


def test_format_shards_reaches_the_pseudo_label_config_and_the_student_streams_the_shards(tmp_path: Path) -> None:
    out = tmp_path / "o"
    pipe = Pipeline(_shard_recipe(out), output_dir=str(out))
    assert pipe.pseudo_label_config("pseudo_labels", from_checkpoint=False)["format"] == "shards"
    student = pipe.fit_config("student")
    assert student["data"]["class_path"] == SHARD_STUDENT_DATA
    assert student["data"]["init_args"]["pseudo_labeled"] == [
        {"class_path": "da_toolkit.data.shards.pseudo.PseudoLabelShards", "init_args": {"root": str(out / "pseudo_labels")}}]
    resolved = pipe.validate()  # both stages parse as their commands would
    assert resolved["stages"]["pseudo_labels"]["config"]["format"] == "shards"
    # the default stays the file store
    recipe = _shard_recipe(out)
    recipe["stages"]["pseudo_labels"].pop("format")
    files = Pipeline(recipe, output_dir=str(out))
    assert files.pseudo_label_config("pseudo_labels", from_checkpoint=False)["format"] == "files"
    assert files.fit_config("student")["data"]["init_args"]["pseudo_labeled"][0]["class_path"].endswith(
        "PseudoLabelSource")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda r: r["stages"]["pseudo_labels"].update(format="tar"), "stages.pseudo_labels.format is 'tar'"),
    (lambda r: r["stages"]["student"]["config"]["data"].update(class_path="DepthDataModule"),
     "stages.student.config.data.class_path: 'DepthDataModule' cannot stream"),
])
def test_bad_shard_stage_settings_name_the_field(tmp_path: Path, mutate, message: str) -> None:
    recipe = _shard_recipe(tmp_path / "o")
    mutate(recipe)
    pipe = Pipeline(recipe, output_dir=str(tmp_path / "o"))
    with pytest.raises(PipelineConfigError, match=message):
        pipe.validate()


@pytest.mark.slow
def test_teacher_pseudo_label_shards_student_run_for_real(tmp_path: Path) -> None:
    from da_toolkit.data.shards.pseudo import read_store_indexes

    out = tmp_path / "o"
    pipe = Pipeline(_shard_recipe(out), output_dir=str(out))
    pipe.validate()
    for name in ("teacher", "pseudo_labels", "student"):
        status = (pipe.run_fit if name != "pseudo_labels" else pipe.run_pseudo_label)(name)
        assert status.startswith("finished"), (name, status)
    index = read_store_indexes(str(out / "pseudo_labels"))["rank000"]
    ids = [i for e in index["shardlist"] for i in e["ids"]]
    assert len(ids) == len(set(ids)) == 6
    assert (out / "student" / "final.ckpt").exists()
