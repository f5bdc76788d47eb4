"""Every recipe of recipes/ (except infer*) runs as written, with tiny overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from da_toolkit.cli.lightning_cli import run_lightning_cli
from tests.recipes.conftest import RECIPES, synthetic, tiny_trainer, write

OWNED = ["teacher.yaml", "pseudo_label.yaml", "student.yaml", "metric_finetune.yaml", "eval_zero_shot.yaml",
         "quickstart.yaml"]


#: top-level recipes run by another test file (named there, checked below)
ELSEWHERE = {"ablation.yaml": "test_ablation.py", "pseudo_label_shards.yaml": "test_shard_recipes.py",
             "student_shards.yaml": "test_shard_recipes.py"}


def test_every_recipe_is_covered_here() -> None:
    found = {p.name for p in RECIPES.glob("*.yaml") if not p.name.startswith("infer")}
    assert found - set(ELSEWHERE) == set(OWNED)


def test_every_recipe_anywhere_is_run_by_some_test() -> None:
    """recipes/**/*.yaml (infer*, skin/... included) each appear in a test that runs them."""
    tests = RECIPES.parent / "tests"
    texts = {p: p.read_text() for p in tests.rglob("test_*.py")}
    runners = {"infer.yaml": "test_predict_cli.py", "infer_video.yaml": "test_video.py",
               "student_convnext.yaml": "test_skin_recipe.py", "quickstart.yaml": "pipeline_helpers.py",
               **ELSEWHERE}
    texts.update({p: p.read_text() for p in tests.rglob("pipeline_helpers.py")})
    for recipe in sorted(RECIPES.rglob("*.yaml")):
        users = [p.name for p, t in texts.items() if f'"{recipe.name}"' in t]
        assert users, f"no test names {recipe.relative_to(RECIPES.parent)}"
        if recipe.name in runners:
            assert runners[recipe.name] in users, (recipe.name, users)


@pytest.mark.parametrize("name", ["teacher.yaml", "student.yaml", "metric_finetune.yaml", "pseudo_label.yaml"])
def test_paper_recipes_hold_paper_settings_and_marked_paths(name: str) -> None:
    text = (RECIPES / name).read_text()
    cfg = yaml.safe_load(text)
    assert "FILL_ME" in text
    if name == "pseudo_label.yaml":
        assert cfg["data"]["input_size"] == 518
        return
    init = cfg["model"]["init_args"]
    assert init["optim"]["encoder_lr"] == pytest.approx(5e-6)
    assert init["optim"]["decoder_lr_mult"] == pytest.approx(10.0)
    assert cfg["data"]["init_args"]["crop_size"] == 518
    if name == "student.yaml":
        assert init["feature_loss"]["init_args"]["margin"] == pytest.approx(0.85)
        assert init["cutmix"]["init_args"]["p"] == pytest.approx(0.5)
        assert init["unlabeled_loss"]["init_args"]["trim"] == pytest.approx(0.1)
        assert cfg["data"]["init_args"]["unlabeled_ratio"] == 2


def test_teacher_recipe_runs(tmp_path: Path) -> None:
    override = {"trainer": tiny_trainer(tmp_path / "run"),
                "model": {"init_args": {"model": "tiny"}},
                "data": {"init_args": {"labeled": [synthetic(4)], "val": [synthetic(1, seed=9)], "crop_size": 28,
                                        "batch_size": 2, "num_workers": 0, "persistent_workers": False,
                                        "pin_memory": False}}}
    cli = run_lightning_cli(["fit", "--config", str(RECIPES / "teacher.yaml"),
                             "--config", write(tmp_path / "o.yaml", override)])
    assert cli.trainer.global_step == 2
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert "val/abs_rel" in cli.trainer.callback_metrics
    assert cli.model.gradient_loss is not None and cli.model.optim.optimizer == "adam"


def test_pseudo_label_then_student_recipes_run(tmp_path: Path, tiny_weights: str) -> None:
    from da_toolkit.cli.pseudo_label import run as pseudo_label
    from da_toolkit.data.sources.pseudo import PseudoLabelSource

    store = tmp_path / "store"
    pl_override = {"store": str(store), "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true",
                                                     "enable_progress_bar": False},
                   "model": {"teacher": tiny_weights},  # the file records its model
                   "data": {"sources": [synthetic(6, seed=3, labeled=False)], "input_size": 28, "num_workers": 0}}
    result = pseudo_label(["--config", str(RECIPES / "pseudo_label.yaml"),
                           "--config", write(tmp_path / "pl.yaml", pl_override)])
    assert result["written"] == 6
    assert len(PseudoLabelSource(store)) == 6

    trainer = tiny_trainer(tmp_path / "student")
    del trainer["precision"]  # the recipe's bf16-mixed, as written (CPU autocast)
    override = {"trainer": trainer,
                "model": {"init_args": {"model": {"preset": "tiny", "encoder_weights": tiny_weights}}},
                "data": {"init_args": {"labeled": [synthetic(4)], "val": [synthetic(1, seed=9)],
                                        "pseudo_labeled": [{"class_path": "pseudo_labels",
                                                            "init_args": {"root": str(store)}}],
                                        "crop_size": 28, "batch_size": 2, "num_workers": 0,
                                        "persistent_workers": False, "pin_memory": False}}}
    cli = run_lightning_cli(["fit", "--config", str(RECIPES / "student.yaml"),
                             "--config", write(tmp_path / "s.yaml", override)])
    task = cli.model
    assert cli.trainer.global_step == 2 and cli.trainer.precision == "bf16-mixed"
    assert task.cutmix is not None and task.perturbation is not None and task.frozen_encoder is not None
    assert {"train/unlabeled", "train/feature", "train/labeled"} <= set(cli.trainer.callback_metrics)


def test_metric_finetune_recipe_runs(tmp_path: Path, tiny_weights: str) -> None:
    override = {"trainer": tiny_trainer(tmp_path / "run"),
                "model": {"init_args": {"model": {"preset": "tiny", "decoder": {"max_depth": 20.0},
                                                   "encoder_weights": tiny_weights}}},
                "data": {"init_args": {"labeled": [synthetic(4)], "val": [synthetic(1, seed=9)], "crop_size": 28,
                                        "batch_size": 2, "num_workers": 0}}}
    cli = run_lightning_cli(["fit", "--config", str(RECIPES / "metric_finetune.yaml"),
                             "--config", write(tmp_path / "o.yaml", override)])
    assert cli.model.output_kind == "metric"
    assert "train/silog" in cli.trainer.callback_metrics
    assert cli.model.optim.schedule == "poly"


def test_eval_zero_shot_recipe_runs_with_its_metric_settings(tmp_path: Path, tiny_weights: str, capsys) -> None:
    from da_toolkit.cli.pipeline import main

    recipe = yaml.safe_load((RECIPES / "eval_zero_shot.yaml").read_text())
    assert set(recipe["evaluation"]["sets"]) == {"kitti", "nyuv2", "sintel", "eth3d", "diode"}
    recipe["output_dir"] = str(tmp_path / "out")
    recipe["evaluation"]["input_size"] = 28
    recipe["evaluation"]["models"] = {"tiny": {"preset": "tiny", "weights": tiny_weights}}
    for i, s in enumerate(recipe["evaluation"]["sets"].values()):
        assert s["metrics"]["alignment"] == "lstsq-disparity"
        s["source"] = synthetic(2, seed=100 + i)
    assert main(["--config", write(tmp_path / "e.yaml", recipe)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"results: {tmp_path / 'out' / 'results.json'}"
    import json

    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["tiny"]) == {"kitti", "nyuv2", "sintel", "eth3d", "diode"}
    assert all(np.isfinite(v["abs_rel"]) for v in res["tiny"].values())
