"""`da-toolkit pipeline` on a shrunk quickstart: stages, results.json, skipping on a re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from da_toolkit.cli.pipeline import main
from da_toolkit.cli.pipeline_runner import Pipeline, PipelineConfigError
from tests.cli.pipeline_helpers import tiny_quickstart, without_pretrain, write_recipe


def test_pipeline_runs_then_skips_completed_stages(tmp_path: Path, capsys) -> None:
    recipe = tiny_quickstart(tmp_path / "out")
    for name in ("student_no_perturbation", "student_no_feature_alignment"):
        del recipe["stages"][name]  # the ablations run in the real quickstart; keep this test short
    recipe["evaluation"]["models"] = ["teacher", "student"]
    cfg = write_recipe(recipe, tmp_path / "q.yaml")

    assert main(["--config", str(cfg)]) == 0
    first = capsys.readouterr()
    lines = first.out.strip().splitlines()
    results_path = tmp_path / "out" / "results.json"
    assert lines[-1] == f"results: {results_path}"
    results = json.loads(results_path.read_text())
    assert set(results) == {"teacher", "student"}
    import torch

    from da_toolkit.metrics import DepthMetrics

    probe = DepthMetrics(alignment="lstsq-disparity")
    probe.update(torch.rand(1, 8, 8) + 0.5, torch.rand(1, 8, 8) + 1.0, torch.ones(1, 8, 8, dtype=torch.bool))
    metric_names = set(probe.compute())
    assert {"abs_rel", "delta1", "rmse"} <= metric_names
    for model in results.values():
        assert set(model) == {"target_test", "source_test"}
        for metrics in model.values():
            assert set(metrics) == metric_names | {"num_images"}  # every DepthMetrics value, per model and set
            assert 0.0 <= metrics["delta1"] <= 1.0 and metrics["num_images"] == 3
    # the table: header, rule, one row per (model, set) with the abs_rel/delta1/rmse of results.json
    table = lines[-7:-1]
    assert table[0].split() == ["model", "set", "abs_rel", "delta1", "rmse"]
    rows = {(r.split()[0], r.split()[1]): [float(x) for x in r.split()[2:]] for r in table[2:]}
    assert set(rows) == {(m, s) for m in ("teacher", "student") for s in ("target_test", "source_test")}
    for (m, s), values in rows.items():
        assert values == pytest.approx([results[m][s][k] for k in ("abs_rel", "delta1", "rmse")], abs=1e-4)
    out = tmp_path / "out"
    assert (out / "teacher" / "final.ckpt").is_file() and (out / "student" / "done.json").is_file()
    assert (out / "pseudo_labels.done.json").is_file()
    # the student read the store written by the pseudo-label stage
    student_cfg = (out / "configs" / "student.yaml").read_text()
    assert str(out / "pseudo_labels") in student_cfg and str(out / "pretrain" / "final.ckpt") in student_cfg
    mtime = (out / "teacher" / "final.ckpt").stat().st_mtime

    assert main(["--config", str(cfg)]) == 0
    second = capsys.readouterr()
    assert second.out.strip().splitlines()[-1] == f"results: {results_path}"
    for stage in ("teacher", "pseudo_labels", "student"):
        assert f"stage {stage}: skipped (complete)" in second.err
    assert (out / "teacher" / "final.ckpt").stat().st_mtime == mtime
    assert json.loads(results_path.read_text()) == results


def test_ablation_stages_inherit_base_and_apply_overrides(tmp_path: Path) -> None:
    pipe = Pipeline(tiny_quickstart(tmp_path / "o"), output_dir=str(tmp_path / "o"))
    base = pipe.stage_config("student")["model"]["init_args"]
    nopert = pipe.stage_config("student_no_perturbation")["model"]["init_args"]
    nofeat = pipe.stage_config("student_no_feature_alignment")["model"]["init_args"]
    assert base["perturbation"] and base["cutmix"] and base["feature_loss"]
    assert nopert["perturbation"] is None and nopert["cutmix"] is None and nopert["feature_loss"]
    assert nofeat["feature_loss"] is None and nofeat["perturbation"]
    assert pipe.stages["student_no_perturbation"]["pseudo_labels"] == "pseudo_labels"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("output_dir"), "output_dir"),
        (lambda r: r["stages"]["teacher"].update(kind="train"), "stages.teacher.kind"),
        (lambda r: r["stages"]["student"].update(pseudo_labels="nope"), "stages.student.pseudo_labels"),
    ],
)
def test_bad_pipeline_recipes_name_the_field(tmp_path: Path, mutate, message: str, capsys) -> None:
    recipe = tiny_quickstart(tmp_path / "o")
    mutate(recipe)
    with pytest.raises(PipelineConfigError, match=message):
        Pipeline(recipe, output_dir=None if "output_dir" not in recipe else str(tmp_path / "o"))
    assert main(["--config", str(write_recipe(recipe, tmp_path / "bad.yaml"))]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "teacher").exists()  # nothing ran


def test_interrupted_fit_stage_resumes_from_last_checkpoint(tmp_path: Path, capsys) -> None:
    recipe = tiny_quickstart(tmp_path / "out", steps=2)
    recipe["stages"] = {"teacher": recipe["stages"]["teacher"]}
    recipe["stages"]["teacher"].pop("encoder_from")  # its pretrain stage is left out here
    recipe["evaluation"]["models"] = ["teacher"]
    cfg = tmp_path / "q.yaml"
    assert main(["--config", str(write_recipe(recipe, cfg))]) == 0
    teacher = tmp_path / "out" / "teacher"
    # simulate a run that died after its last checkpoint: no done marker, more steps wanted
    (teacher / "done.json").unlink()
    (teacher / "final.ckpt").unlink()
    (tmp_path / "out" / "eval" / "teacher.json").unlink()
    recipe["stages"]["teacher"]["config"]["trainer"]["max_steps"] = 3
    assert main(["--config", str(write_recipe(recipe, cfg))]) == 0
    err = capsys.readouterr().err
    assert "stage teacher: resumed and finished" in err
    assert json.loads((teacher / "done.json").read_text())["global_step"] == 3


def test_help_documents_every_option(capsys) -> None:
    from tests.cli.test_lightning_cli import help_entries, undocumented

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert {"--help", "--config", "--output_dir", "--print_config", "--KEY=VALUE"} == set(help_entries(out))
    assert undocumented(out) == []
    for word in ("stages", "evaluation", "results.json", "encoder_from", "overrides"):  # the recipe format
        assert word in out, word


def test_init_from_and_encoder_from_fill_the_weights_of_the_stage(tmp_path: Path, monkeypatch) -> None:
    import da_toolkit.cli.lightning_cli as lightning_cli

    seen: dict[str, dict] = {}

    class Stop(Exception):
        pass

    def fake_cli(argv: list[str], **_: object) -> None:
        seen["cfg"] = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text())
        raise Stop

    monkeypatch.setattr(lightning_cli, "run_lightning_cli", fake_cli)
    recipe = tiny_quickstart(tmp_path / "o")
    out = tmp_path / "o"
    for key, field in (("init_from", "weights"), ("encoder_from", "encoder_weights")):
        recipe["stages"]["student"].pop("encoder_from", None)
        recipe["stages"]["student"][key] = "teacher"
        pipe = Pipeline(recipe, output_dir=str(out))
        with pytest.raises(Stop):
            pipe.run_fit("student")
        init = seen["cfg"]["model"]["init_args"]["model"]["init_args"]  # on the model description
        assert init[field] == str(out / "teacher" / "final.ckpt")
        other = "encoder_weights" if field == "weights" else "weights"
        assert init.get(other) is None
        # the ablations inherit the reference from their base
        assert pipe.stages["student_no_feature_alignment"][key] == "teacher"
        recipe["stages"]["student"].pop(key)
    recipe["stages"]["student"]["init_from"] = "teachr"
    with pytest.raises(PipelineConfigError, match="stages.student.init_from"):
        Pipeline(recipe, output_dir=str(out))


@pytest.mark.slow
def test_whole_tiny_quickstart_with_ablations(tmp_path: Path, capsys) -> None:
    """Every stage of recipes/quickstart.yaml as written (ablations included), shrunk to tiny sizes."""
    recipe = tiny_quickstart(tmp_path / "out")
    models = recipe["evaluation"]["models"]
    assert set(models) == {"teacher", "student", "student_no_perturbation", "student_no_feature_alignment"}
    assert main(["--config", str(write_recipe(recipe, tmp_path / "q.yaml"))]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results_path = tmp_path / "out" / "results.json"
    assert lines[-1] == f"results: {results_path}"
    results = json.loads(results_path.read_text())
    assert set(results) == set(models)
    for name in models:
        assert (tmp_path / "out" / name / "final.ckpt").is_file()
        assert set(results[name]) == {"target_test", "source_test"}
    nopert = yaml.safe_load((tmp_path / "out" / "configs" / "student_no_perturbation.yaml").read_text())
    assert nopert["model"]["init_args"]["perturbation"] is None and nopert["model"]["init_args"]["cutmix"] is None


def test_a_typo_in_a_later_stage_is_refused_before_the_first_stage_runs(tmp_path: Path, capsys) -> None:
    """Issue 13.10: `crop_sise` in the student (and so in its ablations, by `base:`) stopped the
    pipeline only after the teacher had trained."""
    recipe = tiny_quickstart(tmp_path / "o")
    recipe["stages"]["student"]["config"]["data"]["init_args"]["crop_sise"] = 28
    assert main(["--config", str(write_recipe(recipe, tmp_path / "typo.yaml"))]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml: stages.student.config.data.init_args.crop_sise: not an argument of StudentDataModule" in err
    assert "did you mean crop_size" in err
    assert not (tmp_path / "o" / "teacher").exists()  # nothing ran
    # an override of an ablation (after `base:` inheritance) is checked too
    recipe = tiny_quickstart(tmp_path / "o")
    recipe["stages"]["student_no_feature_alignment"]["overrides"]["model.init_args.gradient_weight"] = "heavy"
    assert main(["--config", str(write_recipe(recipe, tmp_path / "typo2.yaml"))]) == 2
    assert "stages.student_no_feature_alignment.config.model.init_args.gradient_weight: expected float, got 'heavy'" \
        in capsys.readouterr().err
    # a crop size the model cannot take, in the pseudo-labelled student
    recipe = tiny_quickstart(tmp_path / "o")
    recipe["stages"]["student"]["config"]["data"]["init_args"]["crop_size"] = 30
    assert main(["--config", str(write_recipe(recipe, tmp_path / "crop.yaml"))]) == 2
    assert "stages.student.config.data.init_args.crop_size: 30 is not a multiple of 14" in capsys.readouterr().err
    assert not (tmp_path / "o" / "teacher").exists()


def test_dotted_overrides_and_print_config(tmp_path: Path, capsys) -> None:
    """Issue 19.5: the pipeline takes dotted overrides and --print_config like the other commands."""
    cfg = write_recipe(tiny_quickstart(tmp_path / "o"), tmp_path / "q.yaml")
    assert main(["--config", str(cfg), "--print_config", "--stages.teacher.config.trainer.max_steps=7",
                 "--stages.*.config.trainer.accelerator", "cpu", "--evaluation.input_size=42",
                 "--stages.student_no_perturbation.config.trainer.max_steps=5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    stages = printed["stages"]
    assert stages["teacher"]["config"]["trainer"]["max_steps"] == 7
    assert stages["student"]["config"]["trainer"]["max_steps"] == 2
    assert stages["student_no_perturbation"]["config"]["trainer"]["max_steps"] == 5  # on top of `base:`
    assert stages["student_no_perturbation"]["config"]["model"]["init_args"]["perturbation"] is None
    assert all(s["config"]["trainer"]["accelerator"] == "cpu" for s in stages.values())
    assert printed["evaluation"]["input_size"] == 42
    # the parsed configs: models in full (defaults filled in), the pipeline's paths filled in
    student = stages["student"]["config"]
    encoder = student["model"]["init_args"]["model"]["init_args"]["encoder"]
    assert encoder["init_args"]["embed_dim"] == 32 and encoder["init_args"]["patch_size"] == 14
    assert student["model"]["init_args"]["model"]["init_args"]["encoder_weights"] == str(
        tmp_path / "o" / "pretrain" / "final.ckpt")
    teacher = stages["pseudo_labels"]["config"]["model"]["teacher"]
    assert teacher["init_args"]["weights"] == str(tmp_path / "o" / "teacher" / "final.ckpt")
    assert set(printed["evaluation"]["models"]) == {"teacher", "student", "student_no_perturbation",
                                                    "student_no_feature_alignment"}
    assert not (tmp_path / "o").exists()  # printing runs nothing
    assert main(["--config", str(cfg), "--stages.nope.config.trainer.max_steps=1", "--print_config"]) == 2
    assert "unknown stage 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_convnext_model_flows_through_every_stage(tmp_path: Path, capsys) -> None:
    """Issue 11: an encoder + decoder model (ConvNeXt, stride 32) is pseudo-labelled, distilled and
    evaluated by the pipeline, each stage rebuilding it from the previous stage's checkpoint."""
    recipe = without_pretrain(tiny_quickstart(tmp_path / "out"))  # the swapped encoder does not fit it
    for name in ("student_no_perturbation", "student_no_feature_alignment"):
        del recipe["stages"][name]
    cnn = {"class_path": "DepthModel",
           "init_args": {"encoder": {"class_path": "convnext", "init_args": {"variant": "atto"}},
                         "decoder": {"class_path": "dpt", "init_args": {"features": 16,
                                                                        "out_channels": [8, 16, 32, 32]}}}}
    for name in ("teacher", "student"):
        cfg = recipe["stages"][name]["config"]
        cfg["model"]["init_args"]["model"] = cnn
        cfg["data"]["init_args"]["crop_size"] = 64
    recipe["evaluation"]["models"] = ["teacher", "student"]
    assert main(["--config", str(write_recipe(recipe, tmp_path / "cnn.yaml"))]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results) == {"teacher", "student"}
    store_cfg = yaml.safe_load((tmp_path / "out" / "configs" / "pseudo_labels.yaml").read_text())
    assert store_cfg["model"]["teacher"]["init_args"]["encoder"]["class_path"].endswith("ConvNeXtEncoder")


def _throwaway_encoder_package(root: Path) -> Path:
    """A third-party plugin package registering an encoder (a 4-level CNN pyramid, stride 16)."""
    import textwrap

    pkg = root / "throwaway-encoder"
    (pkg / "da_toolkit_throwaway_encoder").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "da-toolkit-throwaway-encoder"
        version = "0.0.1"

        [project.entry-points.da_toolkit]
        throwaway_encoder = "da_toolkit_throwaway_encoder"
        """))
    (pkg / "da_toolkit_throwaway_encoder" / "__init__.py").write_text(textwrap.dedent('''\
        """A throwaway encoder plugin (tests only)."""
        from torch import nn

        from da_toolkit import hookimpl
        from da_toolkit.models.encoders.base import Encoder, EncoderOutput


        class PyramidEncoder(Encoder):
            def __init__(self, width: int = 8) -> None:
                super().__init__()
                self.out_channels = [width, 2 * width, 4 * width, 4 * width]
                self.reductions = [2, 4, 8, 16]
                stages, c_in = [], 3
                for c in self.out_channels:
                    stages.append(nn.Sequential(nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.ReLU()))
                    c_in = c
                self.stages = nn.ModuleList(stages)

            def forward(self, x):
                features = []
                for stage in self.stages:
                    x = stage(x)
                    features.append(x)
                return EncoderOutput(features, None)


        @hookimpl
        def da_toolkit_encoders():
            return {"throwaway_pyramid": PyramidEncoder}
        '''))
    return pkg


@pytest.mark.slow
def test_a_plugin_encoder_installed_by_pip_flows_through_every_stage(tmp_path: Path) -> None:
    """Issue 11: an encoder of a third-party package (pip-installed here) is trained, rebuilt from
    the teacher's checkpoint for pseudo-labelling, distilled and evaluated by the pipeline."""
    import os
    import subprocess
    import sys

    from tests.plugin_install import pip_install_target

    site = tmp_path / "site"
    pip_install_target(_throwaway_encoder_package(tmp_path), site)
    recipe = without_pretrain(tiny_quickstart(tmp_path / "out"))  # the swapped encoder does not fit it
    for name in ("student_no_perturbation", "student_no_feature_alignment"):
        del recipe["stages"][name]
    plugin_model = {"class_path": "DepthModel",
                    "init_args": {"encoder": {"class_path": "throwaway_pyramid", "init_args": {"width": 8}},
                                  "decoder": {"class_path": "dpt", "init_args": {"features": 16}}}}
    for name in ("teacher", "student"):
        recipe["stages"][name]["config"]["model"]["init_args"]["model"] = plugin_model
        recipe["stages"][name]["config"]["data"]["init_args"]["crop_size"] = 32  # x16
    recipe["evaluation"]["models"] = ["teacher", "student"]
    cfg = write_recipe(recipe, tmp_path / "plugin.yaml")
    script = Path(sys.executable).with_name("da-toolkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "da_toolkit.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DA_TOOLKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(Path(__file__).resolve().parents[2]),
                                                      env.get("PYTHONPATH")]))
    done = subprocess.run([*command, "pipeline", "--config", str(cfg)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(results) == {"teacher", "student"}
    teacher = yaml.safe_load((tmp_path / "out" / "configs" / "pseudo_labels.yaml").read_text())["model"]["teacher"]
    assert teacher["init_args"]["encoder"]["class_path"] == "da_toolkit_throwaway_encoder.PyramidEncoder"
    assert teacher["init_args"]["weights"] == str(tmp_path / "out" / "teacher" / "final.ckpt")
