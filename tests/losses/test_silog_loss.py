"""SiLogLoss against closed forms and a numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from da_toolkit.losses import SiLogLoss


def test_constant_log_ratio_closed_form() -> None:
    target = torch.rand(2, 5, 5) * 10 + 1
    pred = target * math.exp(0.3)
    # g = -0.3 everywhere: sqrt(0.09 - lambd * 0.09)
    assert SiLogLoss(lambd=0.5)(pred, target).item() == pytest.approx(0.3 / math.sqrt(2), rel=1e-5)
    assert SiLogLoss(lambd=1.0)(pred, target).item() == pytest.approx(0.0, abs=1e-5)
    assert SiLogLoss(lambd=0.0)(pred, target).item() == pytest.approx(0.3, rel=1e-5)


def test_per_sample_reduction_matches_numpy_reference_with_mask_and_min_depth() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 6, 6, generator=g) * 5 + 0.1
    target = torch.rand(3, 6, 6, generator=g) * 5
    target[0, 0, :3] = 0.0  # below min_depth: not counted
    mask = torch.rand(3, 6, 6, generator=g) > 0.3
    per_sample = []
    for p, t, m in zip(pred.double().numpy(), target.double().numpy(), mask.numpy(), strict=True):
        m = m & (t > 1e-3)
        gg = np.log(t[m]) - np.log(p[m])
        per_sample.append(np.sqrt(np.mean(gg**2) - 0.5 * np.mean(gg) ** 2))
    got = SiLogLoss(reduction="sample")(pred, target, mask).item()
    assert got == pytest.approx(float(np.mean(per_sample)), rel=1e-5)


def test_perfect_prediction_and_empty_mask_have_finite_gradients() -> None:
    target = torch.rand(1, 4, 4) + 1
    pred = target.clone().requires_grad_(True)
    loss = SiLogLoss()(pred, target)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and loss.item() < 1e-5
    pred2 = torch.rand(1, 4, 4, requires_grad=True)
    loss2 = SiLogLoss()(pred2, target, torch.zeros(1, 4, 4, dtype=torch.bool))
    loss2.backward()
    assert loss2.item() == 0.0 and torch.isfinite(pred2.grad).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lambd"):
        SiLogLoss(lambd=2.0)
    with pytest.raises(ValueError, match="min_depth"):
        SiLogLoss(min_depth=0.0)
    with pytest.raises(ValueError, match="reduction"):
        SiLogLoss(reduction="mean")  # type: ignore[arg-type]


def test_non_finite_values_at_invalid_pixels_are_harmless() -> None:
    target = torch.rand(1, 4, 4) + 1
    pred = torch.rand(1, 4, 4) + 1
    mask = torch.rand(1, 4, 4) > 0.4
    dirty = pred.masked_fill(~mask, float("nan")).requires_grad_(True)
    loss = SiLogLoss()(dirty, target.masked_fill(~mask, float("inf")), mask)
    loss.backward()
    torch.testing.assert_close(loss, SiLogLoss()(pred, target, mask))
    assert torch.isfinite(dirty.grad).all()
