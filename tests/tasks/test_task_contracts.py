"""Issue 14.3: tasks check their components' contracts when built, naming the recipe key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from da_toolkit.losses.contract import LossContractError
from da_toolkit.models import DepthModel, build_tiny_model
from da_toolkit.models.contract import EncoderContractError
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.encoders.base import Encoder, EncoderOutput

REPO = Path(__file__).resolve().parents[2]
MODULE = "tests.tasks.test_task_contracts"  # as the recipe names it (imported from the repository root)


class LyingPyramid(Encoder):
    """Declares strides 4..32 but returns maps at strides 2..16 (DPT runs on it without complaint)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, channels, 1) for _ in range(4))
        self.out_channels = [channels] * 4
        self.reductions = [4, 8, 16, 32]

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput([conv(F.avg_pool2d(x, r)) for conv, r in zip(self.convs, (2, 4, 8, 16))], None)


class TwoArgLoss(nn.Module):
    """A loss that forgot the mask: ``(pred, target)``."""

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().mean()


class LabeledFormLoss(nn.Module):
    """A correct labeled loss ``(pred, target, mask)`` - wrong as the student's unlabeled (CutMix) loss."""

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return (pred - target).abs()[mask].mean()


def _liar_model() -> DepthModel:
    return DepthModel(LyingPyramid(), DPTDecoder(features=8, out_channels=(8, 8, 8, 8)))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_a_lying_encoder_fails_when_the_task_is_built_unless_checks_are_off() -> None:
    from da_toolkit.tasks.teacher import TeacherTask

    with pytest.raises(EncoderContractError) as info:
        TeacherTask(model=_liar_model())
    msg = _one_line(info)
    assert msg.startswith(f"model.init_args.model.init_args.encoder: {__name__}.LyingPyramid declares")
    assert "strides ['2x2', '4x4', '8x8', '16x16']" in msg
    task = TeacherTask(model=_liar_model(), check_contracts=False)  # the old behaviour: builds silently
    assert task.check_contracts is False


@pytest.mark.parametrize(
    ("task", "kwargs", "key"),
    [
        ("teacher", {"labeled_loss": TwoArgLoss()}, "model.init_args.labeled_loss"),
        ("teacher", {"gradient_loss": TwoArgLoss()}, "model.init_args.gradient_loss"),
        ("student", {"unlabeled_loss": LabeledFormLoss()}, "model.init_args.unlabeled_loss"),
        ("metric", {"loss": TwoArgLoss()}, "model.init_args.loss"),
    ],
)
def test_a_loss_with_the_wrong_signature_names_its_key(task: str, kwargs: dict, key: str) -> None:
    from da_toolkit.tasks.metric import MetricTask
    from da_toolkit.tasks.student import StudentTask
    from da_toolkit.tasks.teacher import TeacherTask

    cls = {"teacher": TeacherTask, "student": StudentTask, "metric": MetricTask}[task]
    model = build_tiny_model(max_depth=10.0 if task == "metric" else None)
    with pytest.raises(LossContractError) as info:
        cls(model=model, **kwargs)
    msg = _one_line(info)
    name = type(next(iter(kwargs.values()))).__name__
    assert msg.startswith(f"{key}: {__name__}.{name}"), msg
    if task == "student":  # the labeled form given as CutMix loss is pointed at the wrapper
        assert "CutMixRegionLoss" in msg
    assert cls(model=build_tiny_model(max_depth=10.0 if task == "metric" else None), check_contracts=False, **kwargs)


def test_student_checks_its_teacher_and_frozen_encoder() -> None:
    from da_toolkit.tasks.student import StudentTask

    with pytest.raises(EncoderContractError, match=r"^model\.init_args\.teacher\.init_args\.encoder: .*LyingPyramid"):
        StudentTask(model=build_tiny_model(), teacher=_liar_model())
    with pytest.raises(EncoderContractError, match=r"^model\.init_args\.frozen_encoder: .*LyingPyramid"):
        StudentTask(model=build_tiny_model(), frozen_encoder=LyingPyramid(), feature_loss=nn.Identity())


def test_honest_components_pass_and_the_checks_are_cheap() -> None:
    """The checks' cost is bounded by the work they do (counted, not timed): a few forwards of one
    tiny image per model and one call of each loss on a tiny batch."""
    from da_toolkit.losses.affine_invariant import AffineInvariantLoss
    from da_toolkit.losses.cutmix import CutMixAffineInvariantLoss
    from da_toolkit.tasks.student import StudentTask

    calls: list[tuple[str, tuple[int, ...]]] = []

    class Labeled(AffineInvariantLoss):
        def forward(self, pred: Tensor, *args: Tensor) -> Tensor:
            calls.append(("labeled_loss", tuple(pred.shape)))
            return super().forward(pred, *args)

    class Unlabeled(CutMixAffineInvariantLoss):
        def forward(self, pred: Tensor, *args: Tensor) -> Tensor:
            calls.append(("unlabeled_loss", tuple(pred.shape)))
            return super().forward(pred, *args)

    def spied_model(name: str) -> DepthModel:
        model = build_tiny_model()
        model.encoder.register_forward_pre_hook(lambda mod, args: calls.append((name, tuple(args[0].shape))))
        return model

    def build(check: bool) -> list[tuple[str, tuple[int, ...]]]:
        calls.clear()
        torch.manual_seed(0)
        StudentTask(model=spied_model("model"), teacher=spied_model("teacher"), labeled_loss=Labeled(),
                    unlabeled_loss=Unlabeled(trim=0.1), check_contracts=check)
        return list(calls)

    with_checks, without = build(True), build(False)
    extra = list(with_checks)
    for call in without:  # what the task does anyway (e.g. probing feature widths)
        extra.remove(call)
    assert {name for name, _ in extra} == {"model", "teacher", "labeled_loss", "unlabeled_loss"}
    for name, shape in extra:
        if name in ("model", "teacher"):
            assert shape[0] == 1 and shape[2] * shape[3] <= 64 * 64, (name, shape)  # one tiny image
        else:
            assert shape[0] <= 2 and shape[-2] * shape[-1] <= 32 * 32, (name, shape)
    assert sum(name in ("model", "teacher") for name, _ in extra) <= 4
    assert [name for name, _ in extra].count("labeled_loss") == 1
    assert [name for name, _ in extra].count("unlabeled_loss") == 1


def _recipe(tmp_path: Path, **model_args: object) -> str:
    cfg = {
        "trainer": {"accelerator": "cpu", "max_steps": 1, "logger": False, "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "TeacherTask", "init_args": {"model": "tiny", **model_args}},
        "data": {"class_path": "DepthDataModule",
                 "init_args": {"labeled": [{"class_path": "synthetic", "init_args": {"length": 2, "size": [28, 28]}}],
                               "crop_size": 224, "batch_size": 1, "num_workers": 0}},  # x14 and x32
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


LIAR = {"class_path": "DepthModel",
        "init_args": {"encoder": {"class_path": f"{MODULE}.LyingPyramid"},
                      "decoder": {"class_path": "dpt", "init_args": {"features": 8, "out_channels": [8, 8, 8, 8]}}}}


@pytest.mark.parametrize(
    ("model_args", "expected"),
    [
        ({"model": LIAR}, "model.init_args.model.init_args.encoder: tests.tasks.test_task_contracts.LyingPyramid"),
        ({"labeled_loss": {"class_path": f"{MODULE}.TwoArgLoss"}},
         "model.init_args.labeled_loss: tests.tasks.test_task_contracts.TwoArgLoss"),
    ],
    ids=["lying-encoder", "wrong-signature-loss"],
)
def test_fit_refuses_a_recipe_with_a_broken_component_in_one_line(tmp_path: Path, model_args: dict,
                                                                   expected: str) -> None:
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "da_toolkit.cli", "fit", "--config", _recipe(tmp_path, **model_args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("da-toolkit")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before the trainer ran
