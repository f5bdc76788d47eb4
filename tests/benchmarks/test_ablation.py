"""benchmarks/ablation.py: the summary statistics and verdicts against hand-worked values, and a
seconds-scale run of the real recipe (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bench_loader import load_benchmark_module

ROOT = Path(__file__).resolve().parents[2]


def _module():
    return load_benchmark_module("ablation")


def _results(teacher: tuple[float, float], full: tuple[float, float]) -> dict:
    return {
        "teacher": {"target_test": {"abs_rel": teacher[0], "delta1": teacher[1]}},
        "student_full": {"target_test": {"abs_rel": full[0], "delta1": full[1]}},
    }


def test_summary_is_mean_std_and_paired_differences_worked_by_hand():
    ab = _module()
    per_seed = {
        0: _results((0.30, 0.50), (0.25, 0.60)),
        1: _results((0.20, 0.60), (0.16, 0.69)),
        2: _results((0.25, 0.55), (0.20, 0.66)),
    }
    s = ab.summarise(per_seed)
    mean, std = s["models"]["teacher"]["target_test"]["abs_rel"]
    assert mean == pytest.approx(0.25) and std == pytest.approx(0.05)  # 0.30, 0.20, 0.25
    # paired differences abs_rel: -0.05, -0.04, -0.05 -> mean -0.046667, sample std 0.005774
    d_mean, d_std = s["paired_vs_teacher"]["student_full"]["target_test"]["abs_rel"]
    assert d_mean == pytest.approx(-0.14 / 3)
    assert d_std == pytest.approx(math.sqrt(((1 / 300) ** 2 * 2 + (2 / 300) ** 2) / 2))
    assert ab.beats((d_mean, d_std), "abs_rel")  # lower by far more than 2 std
    # delta1 differences: +0.10, +0.09, +0.11 -> mean 0.10, std 0.01 -> beats
    assert ab.beats(s["paired_vs_teacher"]["student_full"]["target_test"]["delta1"], "delta1")


def test_verdicts_are_no_when_the_difference_is_within_noise():
    ab = _module()
    assert not ab.beats((-0.01, 0.006), "abs_rel")  # 0.01 < 2 * 0.006
    assert not ab.beats((0.02, 0.001), "abs_rel")  # worse, not better
    assert not ab.beats((-0.5, float("nan")), "abs_rel")  # one seed: no spread, no claim
    report = ab.format_report(ab.summarise({0: _results((0.3, 0.5), (0.31, 0.49)), 1: _results((0.2, 0.6), (0.21, 0.6))}))
    assert "student_full beats teacher in abs_rel: no" in report


@pytest.mark.slow
def test_tiny_run_of_the_recipe_over_two_seeds(tmp_path):
    ab = _module()
    out = tmp_path / "json"
    assert ab.main(["--tiny", "--seeds", "0", "1", "--out", str(tmp_path / "runs"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert sorted(data["per_seed"]) == ["0", "1"]
    models = set(data["per_seed"]["0"])
    assert models == {"teacher_scratch", "teacher", "student_plain", "student_perturb", "student_full"}
    # the two seeds really are different runs
    a, b = (data["per_seed"][s]["student_full"]["target_test"]["abs_rel"] for s in ("0", "1"))
    assert a != b
    assert (tmp_path / "runs" / "seed0" / "pretrain" / "final.ckpt").is_file()


def test_the_ablation_recipe_checks_and_wires_the_pretrained_encoder(tmp_path, capsys):
    """recipes/ablation.yaml: every stage parses (print_config checks them all), the teacher and
    the students start from the pretrain stage's encoder, teacher_scratch does not."""
    import yaml

    from da_toolkit.cli import main

    assert main(["pipeline", "--config", str(ROOT / "recipes" / "ablation.yaml"), "--output_dir", str(tmp_path),
                 "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    stages = printed["stages"]
    pretrained = str(tmp_path / "pretrain" / "final.ckpt")

    def enc_weights(name: str):
        return stages[name]["config"]["model"]["init_args"]["model"]["init_args"]["encoder_weights"]

    for name in ("teacher", "student_plain", "student_perturb", "student_full"):
        assert enc_weights(name) == pretrained, name
    assert enc_weights("teacher_scratch") is None
    plain = stages["student_plain"]["config"]["model"]["init_args"]
    full = stages["student_full"]["config"]["model"]["init_args"]
    assert plain["perturbation"] is None and plain["cutmix"] is None and plain["feature_loss"] is None
    assert full["feature_loss"] is not None and full["perturbation"] is not None


def test_tuning_adds_variant_stages_and_evaluates_on_the_validation_set_only():
    from da_toolkit.cli.pipeline_runner import load_pipeline

    ab = _module()
    overrides = ab.tune_overrides()
    assert overrides["evaluation.models"] == ["teacher", "student_full", *ab.TUNE_CANDIDATES]
    assert list(overrides["evaluation.sets"]) == ["target_val"]  # no test set can be looked at
    pipe = load_pipeline(str(ab.RECIPE), output_dir="/nonexistent/tune", overrides=overrides)
    assert pipe.stage_config("tune_steps1200")["trainer"]["max_steps"] == 1200
    assert pipe.stage_config("student_full")["trainer"]["max_steps"] == 400
    margin = pipe.stage_config("tune_margin050")["model"]["init_args"]["feature_loss"]["init_args"]["margin"]
    assert margin == 0.5
    assert pipe.stages["tune_steps1200_unl2048"]["pseudo_labels"] == "pseudo_labels_2048"
    assert pipe.stages["tune_steps1200"]["pseudo_labels"] == "pseudo_labels"  # inherited from the base
    big = pipe.stage_config("pseudo_labels_2048")["data"]["sources"][0]["init_args"]
    small = pipe.stage_config("pseudo_labels")["data"]["sources"][0]["init_args"]
    assert big["length"] == 2048 and small["length"] == 512 and big["seed"] == small["seed"]


def test_tuning_report_gives_the_ratio_of_the_improvement_to_its_spread():
    ab = _module()

    def res(t, c):
        return {"teacher": {"target_val": {"abs_rel": t, "delta1": 0.5}},
                "cand": {"target_val": {"abs_rel": c, "delta1": 0.5}}}

    # differences -0.02, -0.04 -> mean -0.03, sample std 0.0141421 -> better/std 2.12
    text = ab.format_tuning(ab.summarise({0: res(0.30, 0.28), 1: res(0.30, 0.26)}))
    assert "abs_rel -0.0300 +- 0.0141 (better/std +2.12)" in text
