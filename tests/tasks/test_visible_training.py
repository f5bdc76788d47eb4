"""Issue 14.7: loss terms on the progress bar (also with `logger: false`), the labeled term under
the loss's own name, and Lightning's eval-mode warning silenced for frozen sub-models only."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from da_toolkit.tasks.eval_mode import WARNING_PATTERN, frozen_eval_modules
from da_toolkit.tasks.student import StudentTask
from da_toolkit.tasks.teacher import TeacherTask
from tests.tasks.conftest import ListData, make_labeled, make_unlabeled, tiny_model, tiny_trainer


class HalfL1(nn.Module):
    """An unregistered labeled loss ``(pred, target, mask) -> scalar``: logged under its class name."""

    def forward(self, pred, target, mask):
        return 0.5 * (pred - target).abs()[mask].mean()


def _fit(task, tmp_path, batches, steps: int = 1):
    trainer = tiny_trainer(tmp_path, steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(task, ListData(batches))
    return trainer, [str(w.message) for w in caught]


def test_the_labeled_term_is_logged_under_the_loss_name_and_every_term_is_on_the_progress_bar(tmp_path) -> None:
    from da_toolkit.losses.gradient_matching import GradientMatchingLoss

    task = TeacherTask(model=tiny_model(), gradient_loss=GradientMatchingLoss(scales=2), log_images_every_n_steps=0)
    trainer, _ = _fit(task, tmp_path, [{"labeled": make_labeled()}])
    logged = set(trainer.callback_metrics)
    assert {"train/affine_invariant", "train/gradient_matching", "train/labeled", "train/loss"} <= logged
    assert "train/ssi" not in logged and "train/gm" not in logged
    # logger=False (as the shipped recipes): the progress bar still carries every term
    bar = set(trainer.progress_bar_metrics)
    assert {"train/affine_invariant", "train/gradient_matching", "train/labeled", "train/loss"} <= bar
    # train/labeled = affine_invariant + 2 * gradient_matching (the logged values of the one step)
    m = trainer.callback_metrics
    assert float(m["train/labeled"]) == pytest.approx(
        float(m["train/affine_invariant"]) + 2.0 * float(m["train/gradient_matching"]), rel=1e-5)


def test_an_unregistered_loss_is_logged_under_its_class_name(tmp_path) -> None:
    task = TeacherTask(model=tiny_model(), labeled_loss=HalfL1(), log_images_every_n_steps=0)
    trainer, _ = _fit(task, tmp_path, [{"labeled": make_labeled()}])
    assert "train/HalfL1" in trainer.callback_metrics and "train/HalfL1" in trainer.progress_bar_metrics
    assert task.term_log_name("labeled") == "labeled"  # role terms keep their names


def test_a_loss_name_that_clashes_with_another_term_keeps_the_term_name() -> None:
    task = TeacherTask(model=tiny_model(), log_images_every_n_steps=0)
    fake_terms = {"ssi": torch.zeros(()), "affine_invariant": torch.zeros(())}
    assert task.term_log_name("ssi", fake_terms) == "ssi"
    assert task.term_log_name("ssi", {"ssi": torch.zeros(())}) == "affine_invariant"


def _student(**kw) -> StudentTask:
    from da_toolkit.losses.feature_alignment import FeatureAlignmentLoss

    return StudentTask(model=tiny_model(), feature_loss=FeatureAlignmentLoss(margin=0.85),
                       log_images_every_n_steps=0, **kw)


def _eval_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if WARNING_PATTERN.search(m)]


def test_frozen_modules_are_counted_as_lightning_counts_them() -> None:
    task = _student(teacher=tiny_model())
    lightning_count = [n for n, m in task.named_modules() if not m.training]
    assert sorted(frozen_eval_modules(task)) == sorted(lightning_count)
    assert {"frozen_encoder", "teacher"} <= set(frozen_eval_modules(task))
    assert not any(n.startswith("model") for n in frozen_eval_modules(task))


def test_no_eval_mode_warning_for_the_frozen_encoder_and_teacher(tmp_path) -> None:
    batch = {"labeled": make_labeled(), "unlabeled": make_unlabeled()}
    _, messages = _fit(_student(teacher=tiny_model()), tmp_path, [batch])
    assert _eval_warnings(messages) == []
    # the filter is gone after fit: the same warning raised later is shown
    with pytest.warns(UserWarning, match="in eval mode"):
        warnings.warn("Found 3 module(s) in eval mode at the start of training.", UserWarning, stacklevel=1)


def test_a_module_left_in_eval_by_mistake_still_warns(tmp_path) -> None:
    task = _student()
    task.model.decoder.eval()  # trainable, in eval mode: not intended
    task.train = lambda mode=True: task  # keep the mistake through Lightning's mode handling
    batch = {"labeled": make_labeled(), "unlabeled": make_unlabeled(depth=True)}
    _, messages = _fit(task, tmp_path, [batch])
    found = _eval_warnings(messages)
    assert len(found) == 1
    n = int(WARNING_PATTERN.search(found[0]).group(1))
    assert n > len(frozen_eval_modules(task))
