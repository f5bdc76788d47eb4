"""The non-finite guard after the one-sync rewrite (issue 15.1): a NaN/inf gradient of a finite loss
is still caught, named and skipped; huge but finite gradients (whose fused norm overflows) are not;
loss terms are logged on the steps whose values reach the logger."""

from __future__ import annotations

import warnings

import pytest
import torch

from da_toolkit.tasks import NonFiniteLossError, OptimConfig, TeacherTask
from tests.tasks.conftest import ListData, make_labeled, tiny_model, tiny_trainer

#: the parameter whose gradient the tests poison (a conv of the DPT head)
POISONED = "decoder.scratch.output_conv2.0.weight"


def _state(task: TeacherTask) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def _poison(task: TeacherTask, value: float, steps: set[int]) -> None:
    """Replace the gradient of ``POISONED`` with ``value`` everywhere on the (0-based) backward passes in ``steps``."""
    param = dict(task.model.named_parameters())[POISONED]
    calls = {"n": 0}

    def hook(grad: torch.Tensor) -> torch.Tensor:
        i = calls["n"]
        calls["n"] += 1
        return torch.full_like(grad, value) if i in steps else grad

    param.register_hook(hook)


def _task(**kw) -> TeacherTask:
    return TeacherTask(model=tiny_model(), optim=OptimConfig(encoder_lr=1e-3), log_images_every_n_steps=0,
                       check_contracts=False, **kw)


def test_the_poisoned_parameter_exists() -> None:
    assert POISONED in dict(tiny_model().named_parameters())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_nonfinite_gradient_of_a_finite_loss_skips_the_step_and_names_the_parameter(tmp_path, value) -> None:
    task = _task()
    _poison(task, value, {0})
    before = _state(task)
    batch = {"labeled": make_labeled()}
    with pytest.warns(RuntimeWarning, match=rf"non-finite gradients at step 0 \(first: model\.{POISONED}\)"):
        tiny_trainer(tmp_path, 1).fit(task, ListData([batch]))
    assert task.skipped_steps == 1
    after = _state(task)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights untouched


def test_only_the_poisoned_step_is_skipped(tmp_path) -> None:
    task = _task()
    _poison(task, float("nan"), {1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_trainer(tmp_path, 3).fit(task, ListData([{"labeled": make_labeled()}] * 3))
    messages = [str(w.message) for w in caught if "non-finite" in str(w.message)]
    assert task.skipped_steps == 1
    assert len(messages) == 1 and "at step 1 " in messages[0]
    assert all(torch.isfinite(v).all() for v in _state(task).values())


def test_a_nonfinite_gradient_raises_when_configured(tmp_path) -> None:
    task = _task(nonfinite="raise")
    _poison(task, float("nan"), {0})
    with pytest.raises(NonFiniteLossError, match=rf"non-finite gradients at step 0 \(first: model\.{POISONED}\)"):
        tiny_trainer(tmp_path, 1).fit(task, ListData([{"labeled": make_labeled()}]))


def test_huge_finite_gradients_are_not_skipped(tmp_path) -> None:
    # 1e30 everywhere: the fused 2-norm overflows to inf in fp32, the exact check finds every value finite
    assert not torch.isfinite(torch.linalg.vector_norm(torch.full((4,), 1e30)))
    task = _task()
    _poison(task, 1e30, {0})
    before = _state(task)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no skip warning may be raised
        tiny_trainer(tmp_path, 1).fit(task, ListData([{"labeled": make_labeled()}]))
    assert task.skipped_steps == 0
    assert not torch.equal(before[POISONED], _state(task)[POISONED])  # the step was taken


class Recorder:
    """A Lightning logger keeping every ``log_metrics`` call as (step, metrics)."""

    def __new__(cls):
        from lightning.pytorch.loggers.logger import Logger

        class _Recorder(Logger):
            def __init__(self) -> None:
                super().__init__()
                self.rows: list[tuple[int, dict[str, float]]] = []

            @property
            def name(self) -> str:
                return "recorder"

            @property
            def version(self) -> int:
                return 0

            def log_hyperparams(self, params, *args, **kwargs) -> None:
                pass

            def log_metrics(self, metrics, step=None) -> None:
                self.rows.append((int(step), dict(metrics)))

        return _Recorder()


def test_terms_reach_the_logger_on_every_step_it_writes_with_that_steps_values(tmp_path) -> None:
    task = _task()
    seen: list[dict[str, float]] = []
    compute = task.compute_loss

    def recording(batch):
        total, terms, pred = compute(batch)
        seen.append({"train/affine_invariant": float(terms["ssi"].detach()), "train/loss": float(total.detach())})
        return total, terms, pred

    task.compute_loss = recording
    logger = Recorder()
    batches = [{"labeled": make_labeled(seed=s)} for s in range(6)]
    calls = {"n": 0}
    log = task.log

    def counting(name, *args, **kwargs):
        calls["n"] += name != "train/loss"
        return log(name, *args, **kwargs)

    task.log = counting
    trainer = tiny_trainer(tmp_path, 6, logger=logger, log_every_n_steps=3)
    trainer.fit(task, ListData(batches))
    rows = [(step, m) for step, m in logger.rows if "train/loss" in m]
    assert [step for step, _ in rows] == [2, 5]  # Lightning writes every 3rd step
    for step, metrics in rows:  # the terms of exactly that step, not a stale one
        assert metrics["train/affine_invariant"] == pytest.approx(seen[step]["train/affine_invariant"], rel=1e-6)
        assert metrics["train/loss"] == pytest.approx(seen[step]["train/loss"], rel=1e-6)
    # the terms (affine_invariant, labeled) were logged on steps 0, 2 and 5 only, not on all 6
    assert calls["n"] == 2 * 3
    assert {"train/affine_invariant", "train/labeled", "train/loss"} <= set(trainer.progress_bar_metrics)
