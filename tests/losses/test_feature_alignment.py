"""FeatureAlignmentLoss: hand-worked cosines, margin exclusion, resampling, projector."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from da_toolkit.losses import FeatureAlignmentLoss


def _hand_features() -> tuple[torch.Tensor, torch.Tensor]:
    # (B=1, C=2, h=1, w=3): cosines 1, 0, 1/sqrt(2)
    student = torch.tensor([[[[1.0, 1.0, 0.0]], [[0.0, 0.0, 1.0]]]])
    frozen = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]]]])
    return student, frozen


def test_hand_worked_values_and_margin_exclusion() -> None:
    student, frozen = _hand_features()
    c = 1 / math.sqrt(2)
    # margin 1.0 keeps all: 1 - (1 + 0 + c)/3
    assert FeatureAlignmentLoss(margin=1.0)(student, frozen).item() == pytest.approx(1 - (1 + c) / 3, rel=1e-6)
    # margin 0.85 drops the position with cos 1: 1 - (0 + c)/2
    assert FeatureAlignmentLoss(margin=0.85)(student, frozen).item() == pytest.approx(1 - c / 2, rel=1e-6)
    # margin 0.5 drops cos 1 and cos 0.707: 1 - 0
    assert FeatureAlignmentLoss(margin=0.5)(student, frozen).item() == pytest.approx(1.0, rel=1e-6)


def test_everything_above_margin_gives_zero_that_backpropagates() -> None:
    frozen = torch.rand(2, 4, 3, 3) + 0.1
    student = (frozen * 2).requires_grad_(True)
    loss = FeatureAlignmentLoss(margin=0.85)(student, frozen)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(student.grad).all()


def test_frozen_features_are_resampled_to_the_student_size() -> None:
    g = torch.Generator().manual_seed(0)
    student = torch.randn(2, 5, 3, 4, generator=g)
    frozen_big = torch.randn(2, 5, 6, 8, generator=g)
    # bilinear downsampling by exactly 2 (align_corners=False) is the 2x2 block average
    expected = FeatureAlignmentLoss(margin=0.85)(student, F.avg_pool2d(frozen_big, 2))
    torch.testing.assert_close(FeatureAlignmentLoss(margin=0.85)(student, frozen_big), expected)


def test_channel_mismatch_is_an_error_unless_projector() -> None:
    student, frozen = torch.randn(1, 3, 2, 2), torch.randn(1, 5, 2, 2)
    with pytest.raises(ValueError, match="channel"):
        FeatureAlignmentLoss()(student, frozen)
    with pytest.raises(ValueError, match="student_channels"):
        FeatureAlignmentLoss(projector=True)
    loss_fn = FeatureAlignmentLoss(projector=True, student_channels=3, frozen_channels=5, margin=1.0)
    loss = loss_fn(student, frozen)
    loss.backward()
    assert loss_fn.projector is not None and loss_fn.projector.weight.grad is not None


def test_frozen_gets_no_gradient_and_levels_are_averaged() -> None:
    g = torch.Generator().manual_seed(2)
    s1, s2 = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    f1 = torch.randn(2, 4, 3, 3, generator=g).requires_grad_(True)
    f2 = torch.randn(2, 4, 3, 3, generator=g)
    s1.requires_grad_(True)
    loss_fn = FeatureAlignmentLoss(margin=1.0)
    both = loss_fn([s1, s2], [f1, f2])
    torch.testing.assert_close(both, (loss_fn(s1, f1) + loss_fn(s2, f2)) / 2)
    both.backward()
    assert f1.grad is None and s1.grad is not None
    with pytest.raises(ValueError, match="levels"):
        loss_fn([s1], [f1, f2])


def test_projector_stays_in_the_graph_when_everything_is_excluded() -> None:
    loss_fn = FeatureAlignmentLoss(margin=-1.0, projector=True, student_channels=3, frozen_channels=4)
    loss = loss_fn(torch.randn(1, 3, 2, 2), torch.randn(1, 4, 2, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(loss_fn.projector.weight.grad, torch.zeros_like(loss_fn.projector.weight))


def test_zero_and_constant_features_have_finite_gradients() -> None:
    frozen = torch.rand(2, 4, 3, 3, generator=torch.Generator().manual_seed(5))
    for student, target in ((torch.zeros(2, 4, 3, 3), frozen), (torch.ones(2, 4, 3, 3), torch.zeros(2, 4, 3, 3))):
        student.requires_grad_(True)
        loss = FeatureAlignmentLoss()(student, target)
        loss.backward()
        # a zero vector has cosine 0 with anything: loss 1, finite gradients
        assert loss.item() == pytest.approx(1.0) and torch.isfinite(student.grad).all()
