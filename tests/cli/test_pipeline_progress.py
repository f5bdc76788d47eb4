"""Issue 19.8: the pipeline's stage lines show "stage k of n" with elapsed/remaining time, and the
quickstart writes TensorBoard logs (checkpoints stay where resuming looks for them)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from da_toolkit.cli.pipeline import main
from da_toolkit.cli.stage_progress import StageClock, format_duration, stage_work
from tests.cli.pipeline_helpers import REPO, tiny_quickstart, write_recipe

LINE = re.compile(r"\[pipeline\] stage (?P<name>\w+)(?: \((?P<kind>\w+)\))?: (?P<what>.+?) "
                  r"\[stage (?P<k>\d+) of (?P<n>\d+); elapsed (?P<elapsed>[\dhms]+), (?P<rest>.+)\]$")


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+)s", text)
    assert m, text
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return 3600 * h + 60 * mi + s


def test_format_duration() -> None:
    assert [format_duration(x) for x in (0, 42.4, 190, 3725.2)] == ["0s", "42s", "3m10s", "1h02m05s"]
    assert _seconds("1h02m05s") == 3725


def test_stage_work_counts_images_per_step() -> None:
    teacher = {"trainer": {"max_steps": 500}, "data": {"init_args": {"labeled": [{}], "batch_size": 8}}}
    student = {"trainer": {"max_steps": 400},
               "data": {"init_args": {"labeled": [{}], "pseudo_labeled": [{}], "batch_size": 4, "unlabeled_ratio": 2}}}
    pl = {"data": {"sources": [{"init_args": {"length": 512}}, {"init_args": {"length": 8}}]}}
    assert stage_work("fit", teacher) == 500 * 8
    assert stage_work("fit", student) == 400 * (4 + 4 * 2)
    assert stage_work("pseudo_label", pl) == 520
    assert stage_work("pseudo_label", {"data": {"sources": [{"init_args": {"root": "x"}}]}}) is None
    assert stage_work("fit", {"trainer": {"max_steps": -1}, "data": {"init_args": {"batch_size": 2}}}) is None


def test_stage_clock_estimates_from_measured_rates() -> None:
    clock = StageClock([("teacher", "fit", "TeacherTask", 4000.0), ("labels", "pseudo_label", "pseudo_label", 512.0),
                        ("student", "fit", "StudentTask", 4800.0), ("student2", "fit", "StudentTask", 2400.0)], 0.0)
    assert clock.line("teacher", 0.0) == "stage 1 of 4; elapsed 0s, remaining unknown (no stage of that kind measured yet)"
    clock.finished("teacher", 100.0, measured=True)  # 0.025 s per image-step
    # students at the teacher's rate (no student measured yet): 0.025 * (4800 + 2400) = 180 s
    assert clock.line("teacher", 100.0) == "stage 1 of 4; elapsed 1m40s, remaining >3m00s (+ labels not measured yet)"
    clock.finished("labels", 50.0, measured=True, work=500.0)
    assert clock.line("labels", 150.0) == "stage 2 of 4; elapsed 2m30s, remaining ~3m00s"
    clock.finished("student", 240.0, measured=True)  # 0.05 s per image-step: student2 = 0.05 * 2400 = 120 s
    assert clock.line("student2", 390.0) == "stage 4 of 4; elapsed 6m30s, remaining ~2m00s"
    clock.finished("student2", 1.0, measured=False)  # skipped: no rate from it
    assert clock.line("student2", 391.0) == "stage 4 of 4; elapsed 6m31s, remaining 0s (stages)"


def test_quickstart_logs_stage_k_of_n_and_writes_tensorboard_logs(tmp_path: Path, capsys) -> None:
    recipe = yaml.safe_load((REPO / "recipes" / "quickstart.yaml").read_text())
    assert recipe["x-trainer"]["logger"] is True  # the quickstart as shipped logs to TensorBoard
    recipe = tiny_quickstart(tmp_path / "out")
    for name in ("student_no_perturbation", "student_no_feature_alignment"):
        del recipe["stages"][name]
    recipe["evaluation"]["models"] = ["teacher", "student"]
    for stage in recipe["stages"].values():
        if stage["kind"] == "fit":
            stage["config"]["trainer"]["log_every_n_steps"] = 1  # the tiny run has 2 steps
    names = list(recipe["stages"])
    assert main(["--config", str(write_recipe(recipe, tmp_path / "q.yaml"))]) == 0
    err = capsys.readouterr().err
    lines = [m for m in (LINE.match(x) for x in err.splitlines()) if m]
    assert len(lines) == 2 * len(names), err
    n = len(names)
    for i, name in enumerate(names):
        start, end = lines[2 * i], lines[2 * i + 1]
        assert (start["name"], start["what"], int(start["k"]), int(start["n"])) == (name, "starting", i + 1, n)
        assert end["name"] == name and end["what"].startswith("finished") and int(end["k"]) == i + 1
    elapsed = [_seconds(m["elapsed"]) for m in lines]
    assert elapsed == sorted(elapsed)
    assert lines[0]["rest"].startswith("remaining unknown")
    assert lines[-1]["rest"] == "remaining 0s (stages)"
    # after the first fit stage ran, the later fit stages have an estimate
    assert re.match(r"remaining [~>]\d", lines[1]["rest"]), lines[1]["rest"]
    out = tmp_path / "out"
    for name, stage in recipe["stages"].items():
        if stage["kind"] != "fit":
            continue
        events = list((out / name / "lightning_logs").rglob("events.out.tfevents.*"))
        assert events, f"no TensorBoard event file for stage {name}"
        assert (out / name / "checkpoints" / "last.ckpt").is_file()  # where resuming looks

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert "train/loss" in acc.Tags()["scalars"]


@pytest.mark.parametrize("logger", [True, False])
def test_fit_stage_checkpoints_stay_in_the_stage_folder(tmp_path: Path, logger: bool) -> None:
    from da_toolkit.cli.pipeline_runner import Pipeline

    recipe = tiny_quickstart(tmp_path / "o")
    recipe["x-trainer"]["logger"] = logger
    pipe = Pipeline(recipe, output_dir=str(tmp_path / "o"))
    cfg = pipe.fit_config("teacher")
    (cb,) = cfg["trainer"]["callbacks"]
    assert cb["init_args"]["dirpath"] == str(tmp_path / "o" / "teacher" / "checkpoints")
