import warnings

import pytest
import torch
from torch import nn

from da_toolkit.tasks import NonFiniteLossError, OptimConfig, TeacherTask
from tests.tasks.conftest import ListData, make_labeled, tiny_model, tiny_trainer


def test_teacher_training_lowers_the_affine_invariant_loss(tmp_path) -> None:
    batch = {"labeled": make_labeled()}
    task = TeacherTask(model=tiny_model(), optim=OptimConfig(encoder_lr=3e-4, schedule="constant"),
                       log_images_every_n_steps=0)
    before = float(task.compute_loss(batch)[0])
    tiny_trainer(tmp_path, 25).fit(task, ListData([batch] * 25))
    after = float(task.compute_loss(batch)[0])
    assert after < 0.8 * before


def test_teacher_logs_named_terms_and_uses_gradient_matching(tmp_path) -> None:
    from da_toolkit.losses import GradientMatchingLoss

    task = TeacherTask(model=tiny_model(), gradient_loss=GradientMatchingLoss(scales=2), gradient_weight=2.0)
    total, terms, pred = task.compute_loss({"labeled": make_labeled()})
    assert set(terms) == {"ssi", "gm", "labeled"}
    assert float(total) == pytest.approx(float(terms["ssi"] + 2.0 * terms["gm"]), rel=1e-5)
    assert pred.shape == (2, 28, 42)


def test_param_groups_in_the_configured_optimizer() -> None:
    task = TeacherTask(model=tiny_model(), optim=OptimConfig(optimizer="adam", encoder_lr=2e-6, decoder_lr_mult=10))
    opt = task.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.Adam)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["encoder"]["lr"] == pytest.approx(2e-6)
    assert by_name["decoder"]["lr"] == pytest.approx(2e-5)
    enc_ids = {id(p) for p in task.model.encoder.parameters() if p.requires_grad}
    assert task.unused_parameters == [n for n, p in task.model.named_parameters() if not p.requires_grad]
    assert "encoder.mask_token" in task.unused_parameters
    assert {id(p) for p in by_name["encoder"]["params"]} == enc_ids
    n_all = sum(1 for p in task.parameters() if p.requires_grad)
    assert len(by_name["encoder"]["params"]) + len(by_name["decoder"]["params"]) == n_all


class NaNAt(nn.Module):
    """Affine-invariant loss that returns NaN on the calls listed in ``bad``."""

    def __init__(self, bad: set[int]) -> None:
        super().__init__()
        from da_toolkit.losses import AffineInvariantLoss

        self.inner = AffineInvariantLoss()
        self.bad = bad
        self.calls = 0

    def forward(self, pred, target, mask):
        i = self.calls
        self.calls += 1
        loss = self.inner(pred, target, mask)
        return loss * float("nan") if i in self.bad else loss


def _state(task: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def test_nan_loss_skips_the_step_and_keeps_weights(tmp_path) -> None:
    batch = {"labeled": make_labeled()}
    task = TeacherTask(model=tiny_model(), labeled_loss=NaNAt({0, 1}), optim=OptimConfig(encoder_lr=1e-3), check_contracts=False)
    before = _state(task)
    with pytest.warns(RuntimeWarning, match="non-finite training loss"):
        tiny_trainer(tmp_path, 2).fit(task, ListData([batch] * 2))
    after = _state(task)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert task.skipped_steps == 2
    # a later finite step does train
    task2 = TeacherTask(model=tiny_model(), labeled_loss=NaNAt({0}), optim=OptimConfig(encoder_lr=1e-3), check_contracts=False)
    before2 = _state(task2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_trainer(tmp_path, 2).fit(task2, ListData([batch] * 2))
    assert task2.skipped_steps == 1
    assert any(not torch.equal(before2[k], v) for k, v in _state(task2).items())
    assert all(torch.isfinite(v).all() for v in _state(task2).values())


def test_nan_loss_fails_fast_when_configured(tmp_path) -> None:
    task = TeacherTask(model=tiny_model(), labeled_loss=NaNAt({0}), nonfinite="raise", check_contracts=False)
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        tiny_trainer(tmp_path, 1).fit(task, ListData([{"labeled": make_labeled()}]))


def test_validation_logs_depth_metrics(tmp_path) -> None:
    val = [make_labeled(1, 30, 40, seed=s) for s in range(2)]  # not multiples of 14: resized inside
    task = TeacherTask(model=tiny_model())
    trainer = tiny_trainer(tmp_path, 1, limit_val_batches=2, val_check_interval=1)
    trainer.fit(task, ListData([{"labeled": make_labeled()}], val))
    logged = trainer.callback_metrics
    assert {"val/abs_rel", "val/delta1", "train/affine_invariant"} <= set(logged)
    assert 0.0 <= float(logged["val/delta1"]) <= 1.0


def test_prediction_images_are_logged_to_tensorboard(tmp_path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    task = TeacherTask(model=tiny_model(), log_images_every_n_steps=2, num_log_images=2)
    logger = TensorBoardLogger(str(tmp_path), name="tb", version=0)
    tiny_trainer(tmp_path, 3, logger=logger, log_every_n_steps=1).fit(task, ListData([{"labeled": make_labeled()}] * 3))
    acc = EventAccumulator(str(tmp_path / "tb" / "version_0"), size_guidance={"images": 0})
    acc.Reload()
    tags = acc.Tags()["images"]
    assert sorted(tags) == ["train/prediction_0", "train/prediction_1"]
    events = acc.Images("train/prediction_0")
    assert [e.step for e in events] == [0, 2]  # every 2 steps
    # panel = input | prediction | target side by side
    assert (events[0].width, events[0].height) == (3 * 42, 28)
    assert "train/affine_invariant" in acc.Tags()["scalars"]  # the labeled loss's registered name


def test_checkpoints_of_python_built_tasks_load_with_weights_only(tmp_path) -> None:
    from da_toolkit.models.presets import load_model

    task = TeacherTask(model=tiny_model(), optim=OptimConfig(encoder_lr=1e-4))
    trainer = tiny_trainer(tmp_path, 1)
    trainer.fit(task, ListData([{"labeled": make_labeled()}]))
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    ckpt = torch.load(tmp_path / "t.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["optim"]["encoder_lr"] == pytest.approx(1e-4)
    model = load_model("tiny", weights=str(tmp_path / "t.ckpt"))
    for k, v in task.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
