"""ScaleShiftL1Loss and its CutMix-aware form, against an independent numpy least-squares computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.losses import CutMixRegionLoss
from da_toolkit.losses.contract import LossContractError, check_loss
from da_toolkit_dermoscopy import (
    CutMixScaleShiftL1Loss,
    ScaleShiftL1Loss,
    align_scale_shift,
)


def numpy_loss(pred: np.ndarray, target: np.ndarray) -> float:
    """mean |s p + t - y| with (s, t) from numpy's least squares on the given (valid) pixels."""
    a = np.stack([pred.ravel(), np.ones(pred.size)], axis=1).astype(np.float64)
    (s, t), *_ = np.linalg.lstsq(a, target.ravel().astype(np.float64), rcond=None)
    return float(np.mean(np.abs(s * pred.ravel() + t - target.ravel())))


def data(seed: int = 0, shape: tuple[int, int, int] = (3, 6, 7)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64)
    return pred, target, torch.rand(shape, generator=g) > 0.25


def test_alignment_matches_numpy_lstsq() -> None:
    pred, target, mask = data(1)
    s, t = align_scale_shift(pred, target, mask)
    for i in range(3):
        m = mask[i].numpy()
        a = np.stack([pred[i].numpy()[m], np.ones(m.sum())], axis=1)
        (s_ref, t_ref), *_ = np.linalg.lstsq(a, target[i].numpy()[m], rcond=None)
        assert float(s[i]) == pytest.approx(s_ref, rel=1e-9) and float(t[i]) == pytest.approx(t_ref, rel=1e-9, abs=1e-12)


def test_loss_matches_numpy_and_is_invariant_to_scale_and_shift() -> None:
    pred, target, mask = data(2)
    expected = np.mean([numpy_loss(pred[i].numpy()[mask[i].numpy()], target[i].numpy()[mask[i].numpy()]) for i in range(3)])
    loss = ScaleShiftL1Loss()
    assert float(loss(pred, target, mask)) == pytest.approx(expected, rel=1e-9)
    assert float(loss(5 * pred - 3, target, mask)) == pytest.approx(expected, rel=1e-9)
    assert float(loss(pred, 2 * pred + 1, None)) == pytest.approx(0.0, abs=1e-12)


def test_invalid_pixels_never_leak_and_empty_mask_backpropagates() -> None:
    pred, target, mask = data(3)
    dirty = pred.masked_fill(~mask, float("nan"))
    torch.testing.assert_close(ScaleShiftL1Loss()(dirty, target, mask), ScaleShiftL1Loss()(pred, target, mask))
    p = pred.clone().requires_grad_(True)
    out = ScaleShiftL1Loss()(p, target, torch.zeros_like(mask))
    out.backward()
    assert float(out.detach()) == 0.0 and torch.all(p.grad == 0)


def test_cutmix_form_weights_each_region_by_area() -> None:
    pred, ta, _ = data(4, (2, 4, 6))
    tb = torch.rand(2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    mask = torch.zeros(2, 4, 6, dtype=torch.bool)
    mask[0, :, :2] = True  # a third of sample 0 from image a
    mask[1] = True  # sample 1 unmixed
    got = float(CutMixScaleShiftL1Loss()(pred, ta, tb, mask))
    p0, a0, b0, m0 = pred[0].numpy(), ta[0].numpy(), tb[0].numpy(), mask[0].numpy()
    s0 = (1 / 3) * numpy_loss(p0[m0], a0[m0]) + (2 / 3) * numpy_loss(p0[~m0], b0[~m0])
    s1 = numpy_loss(pred[1].numpy(), ta[1].numpy())
    assert got == pytest.approx((s0 + s1) / 2, rel=1e-9)
    assert isinstance(CutMixScaleShiftL1Loss(), CutMixRegionLoss)


def test_both_forms_fit_da_toolkit_contracts() -> None:
    check_loss(ScaleShiftL1Loss(), "labeled", "model.init_args.labeled_loss")
    check_loss(CutMixScaleShiftL1Loss(), "cutmix", "model.init_args.unlabeled_loss")
    with pytest.raises(LossContractError, match=r"unlabeled_loss: da_toolkit_dermoscopy\.losses\.ScaleShiftL1Loss.*CutMixRegionLoss"):
        check_loss(ScaleShiftL1Loss(), "cutmix", "model.init_args.unlabeled_loss")
