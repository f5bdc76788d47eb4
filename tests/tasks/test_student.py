import pytest
import torch

from da_toolkit.losses import FeatureAlignmentLoss
from da_toolkit.perturb import CutMix, StrongPhotometric
from da_toolkit.tasks import OptimConfig, StudentTask
from tests.tasks.conftest import ListData, make_labeled, make_unlabeled, tiny_model, tiny_trainer


def _student(**kw):
    args = dict(model=tiny_model(), perturbation=StrongPhotometric(), cutmix=CutMix(p=1.0),
                feature_loss=FeatureAlignmentLoss(margin=0.85), log_images_every_n_steps=0)
    args.update(kw)
    return StudentTask(**args)


def test_student_terms_with_offline_pseudo_labels() -> None:
    task = _student()
    batch = {"labeled": make_labeled(2), "unlabeled": make_unlabeled(4, depth=True)}
    total, terms, _ = task.compute_loss(batch)
    assert {"labeled", "unlabeled", "feature"} <= set(terms)
    mean = (terms["labeled"] + terms["unlabeled"] + terms["feature"]) / 3
    assert float(total) == pytest.approx(float(mean), rel=1e-5)
    # the frozen encoder starts as a copy of the student's encoder, so features agree at first
    assert float(terms["feature"]) == pytest.approx(0.0, abs=0.2)


def test_student_needs_pseudo_labels_or_an_online_teacher() -> None:
    task = _student()
    with pytest.raises(ValueError, match="no pseudo-labels"):
        task.compute_loss({"unlabeled": make_unlabeled(2)})


def test_online_teacher_is_frozen_and_student_trains(tmp_path) -> None:
    task = _student(teacher=tiny_model(), optim=OptimConfig(encoder_lr=1e-3))
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    frozen_before = {k: v.clone() for k, v in task.frozen_encoder.state_dict().items()}
    student_before = {k: v.clone() for k, v in task.model.state_dict().items()}
    batch = {"labeled": make_labeled(2), "unlabeled": make_unlabeled(4)}
    tiny_trainer(tmp_path, 3).fit(task, ListData([batch] * 3))
    assert all(torch.equal(v, task.teacher.state_dict()[k]) for k, v in teacher_before.items())
    assert all(torch.equal(v, task.frozen_encoder.state_dict()[k]) for k, v in frozen_before.items())
    assert any(not torch.equal(v, task.model.state_dict()[k]) for k, v in student_before.items())
    assert not task.teacher.training and not task.frozen_encoder.training
    opt = task.trainer.optimizers[0]
    trained = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in task.teacher.parameters()}
    assert not trained & {id(p) for p in task.frozen_encoder.parameters()}


class _Spy(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.seen: dict = {}

    def forward(self, *args):
        if self.inner is not None:  # recording wrapper of the CutMix module
            out = self.inner(*args)
            self.seen["out"] = out
            return out
        self.seen["args"] = args
        return args[0].mean() * 0


def test_cutmix_targets_follow_the_pairing() -> None:
    """The unlabeled loss sees target_a = pseudo-labels and target_b = pseudo-labels[pairing]."""
    task = _student(feature_loss=None, perturbation=None)
    loss_spy, mix_spy = _Spy(), _Spy(CutMix(p=1.0))
    task.unlabeled_loss, task.cutmix = loss_spy, mix_spy
    un = make_unlabeled(4, depth=True)
    task.compute_loss({"unlabeled": un})
    pred, ta, tb, mask, valid = loss_spy.seen["args"]
    mixed, m, pairing = mix_spy.seen["out"][:3]
    assert torch.equal(ta, un["depth"])
    assert torch.equal(tb, un["depth"][pairing])
    assert torch.equal(mask, m) and not bool(mask.all())
    assert pred.shape == (4, 28, 42)


def test_aux_segmentation_term() -> None:
    from da_toolkit.losses import SegmentationHead, SegmentationLoss

    task = _student(seg_head=SegmentationHead(in_channels=[32] * 4, num_classes=5, hidden=8),
                    seg_loss=SegmentationLoss())
    lab = make_labeled(2)
    lab["seg"] = torch.randint(0, 5, (2, 28, 42))
    total, terms, _ = task.compute_loss({"labeled": lab})
    assert "seg" in terms and torch.isfinite(terms["seg"])
    assert float(terms["labeled"]) == pytest.approx(float(terms["ssi"] + terms["seg"]), rel=1e-5)
    total.backward()
    assert any(p.grad is not None for p in task.seg_head.parameters())


class _Recorder(torch.nn.Module):
    """Identity perturbation that records every batch it is applied to."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(images.clone())
        return images


@pytest.mark.parametrize("perturb_labeled", [False, True])
def test_perturbations_touch_labeled_images_only_when_configured(perturb_labeled: bool) -> None:
    rec = _Recorder()
    task = _student(perturbation=rec, cutmix=None, perturb_labeled=perturb_labeled)
    batch = {"labeled": make_labeled(2), "unlabeled": make_unlabeled(4, depth=True)}
    task.compute_loss(batch)
    expected = [batch["unlabeled"]["image"]]
    if perturb_labeled:
        expected = [batch["labeled"]["image"], *expected]
    assert len(rec.seen) == len(expected)
    for seen, image in zip(rec.seen, expected):
        assert torch.equal(seen, image)
