"""check_loss: signature and one tiny call, one-line errors naming key, class, expected and got."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from da_toolkit.losses import (
    AffineInvariantLoss,
    CutMixAffineInvariantLoss,
    CutMixRegionLoss,
    GradientMatchingLoss,
    SiLogLoss,
)
from da_toolkit.losses.contract import LossContractError, check_loss

KEY = "model.init_args.unlabeled_loss"


class TwoArgLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().mean()


class DetachingLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return (pred.detach() - target)[mask].abs().mean()


class PerPixelLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return (pred - target).abs()


class NanLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return (pred * float("nan")).mean()


class BrokenLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return pred[:, :, :3] @ target  # shape error inside the loss


@pytest.mark.parametrize(
    ("loss", "signature"),
    [
        (AffineInvariantLoss(), "labeled"),
        (GradientMatchingLoss(), "labeled"),
        (SiLogLoss(), "labeled"),
        (CutMixAffineInvariantLoss(), "cutmix"),
        (CutMixRegionLoss(SiLogLoss()), "cutmix"),
    ],
)
def test_builtin_losses_pass(loss: nn.Module, signature: str) -> None:
    state = torch.random.get_rng_state()
    check_loss(loss, signature, KEY)  # type: ignore[arg-type]
    assert torch.equal(torch.random.get_rng_state(), state)


def test_labeled_loss_given_as_the_cutmix_loss_names_key_class_and_the_wrapper() -> None:
    with pytest.raises(LossContractError) as info:
        check_loss(AffineInvariantLoss(), "cutmix", KEY)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{KEY}: da_toolkit.losses.affine_invariant.AffineInvariantLoss.forward(")
    assert "(pred, target_a, target_b, mask, valid)" in msg and "CutMixRegionLoss" in msg


def test_wrong_labeled_signature() -> None:
    with pytest.raises(LossContractError, match=r"^model\.init_args\.labeled_loss: .*TwoArgLoss\.forward\(pred, target\) "
                       r"cannot take the labeled loss call \(pred, target, mask\)"):  # fmt: skip
        check_loss(TwoArgLoss(), "labeled", "model.init_args.labeled_loss")


@pytest.mark.parametrize(
    ("loss", "expected"),
    [
        (DetachingLoss(), "does not depend on pred"),
        (PerPixelLoss(), r"shape \(2, 8, 8\) .*expected a floating-point scalar"),
        (NanLoss(), "returned nan .*expected a finite value"),
        (BrokenLoss(), "BrokenLoss failed on a tiny labeled call .*RuntimeError"),
        (lambda pred, target, mask: 1.0, "returned float .*expected a scalar tensor"),
    ],
)
def test_bad_results_are_named(loss: object, expected: str) -> None:
    with pytest.raises(LossContractError, match=expected) as info:
        check_loss(loss, "labeled", KEY)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{KEY}: ") and "\n" not in str(info.value)


def test_not_callable_and_unknown_signature() -> None:
    with pytest.raises(LossContractError, match="is not callable"):
        check_loss(3, "labeled", KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="signature must be one of"):
        check_loss(AffineInvariantLoss(), "student", KEY)  # type: ignore[arg-type]
