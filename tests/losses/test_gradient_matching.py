"""GradientMatchingLoss against hand-worked values and a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.losses import GradientMatchingLoss


def _np_hat(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    v = np.sort(d[m])
    c = d - v[(len(v) - 1) // 2]
    return np.where(m, c / max(np.abs(c[m]).mean(), 1e-6), 0.0)


def _np_gm(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, scales: int) -> float:
    per_sample = []
    for p, t, m in zip(pred, target, mask, strict=True):
        if not m.any():
            continue
        r = _np_hat(p.astype(np.float64), m) - _np_hat(t.astype(np.float64), m)
        total = 0.0
        for k in range(scales):
            rs, ms = r[:: 2**k, :: 2**k], m[:: 2**k, :: 2**k]
            acc = 0.0
            for i in range(rs.shape[0]):
                for j in range(rs.shape[1]):
                    if j + 1 < rs.shape[1] and ms[i, j] and ms[i, j + 1]:
                        acc += abs(rs[i, j + 1] - rs[i, j])
                    if i + 1 < rs.shape[0] and ms[i, j] and ms[i + 1, j]:
                        acc += abs(rs[i + 1, j] - rs[i, j])
            total += acc / max(ms.sum(), 1)
        per_sample.append(total)
    return float(np.mean(per_sample)) if per_sample else 0.0


def test_hand_worked_value() -> None:
    pred = torch.tensor([[[0.0, 0.0], [0.0, 1.0]]])
    target = torch.full((1, 2, 2), 5.0)
    # target_hat = 0; pred: lower median 0, mean|c| = 0.25 -> hat [[0,0],[0,4]] = R
    # |dx|: 0 + 4, |dy|: 0 + 4 -> 8 / 4 valid pixels = 2; scale 2 (stride 2) is one pixel -> 0
    assert GradientMatchingLoss(scales=1)(pred, target).item() == pytest.approx(2.0)
    assert GradientMatchingLoss(scales=2)(pred, target).item() == pytest.approx(2.0)


def test_differences_across_invalid_pixels_are_ignored() -> None:
    pred = torch.tensor([[[0.0, 2.0, 9.0]]])
    target = torch.zeros(1, 1, 3)
    mask = torch.tensor([[[True, True, False]]])
    # valid pred [0,2]: lower median 0, mean|c| = 1 -> hat [0,2]; one difference 2 over 2 pixels
    assert GradientMatchingLoss(scales=1)(pred, target, mask).item() == pytest.approx(1.0)


def test_per_sample_reduction_matches_numpy_reference() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 9, 11, generator=g)
    target = torch.rand(3, 9, 11, generator=g)
    mask = torch.rand(3, 9, 11, generator=g) > 0.25
    mask[1] = False
    got = GradientMatchingLoss(scales=3, reduction="sample")(pred, target, mask).item()
    assert got == pytest.approx(_np_gm(pred.numpy(), target.numpy(), mask.numpy(), 3), rel=1e-5)


def test_affine_invariance_and_zero_on_affine_related_maps() -> None:
    pred, target = torch.rand(2, 8, 8, dtype=torch.float64), torch.rand(2, 8, 8, dtype=torch.float64)
    loss = GradientMatchingLoss()
    torch.testing.assert_close(loss(4.0 * pred - 3.0, target), loss(pred, target))
    assert loss(2.0 * target + 1.0, target).item() == pytest.approx(0.0, abs=1e-9)


def test_empty_mask_and_constant_maps_backpropagate() -> None:
    pred = torch.rand(2, 4, 4, requires_grad=True)
    loss = GradientMatchingLoss()(pred, torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pred.grad, torch.zeros_like(pred))
    const = torch.ones(1, 4, 4, requires_grad=True)
    loss = GradientMatchingLoss()(const, torch.ones(1, 4, 4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(const.grad).all()


def test_bad_scales() -> None:
    with pytest.raises(ValueError, match="scales"):
        GradientMatchingLoss(scales=0)


def test_non_finite_predictions_at_invalid_pixels_are_harmless() -> None:
    pred, target = torch.rand(2, 6, 6), torch.rand(2, 6, 6)
    mask = torch.rand(2, 6, 6) > 0.3
    dirty = pred.masked_fill(~mask, float("nan")).requires_grad_(True)
    loss = GradientMatchingLoss()(dirty, target.masked_fill(~mask, float("inf")), mask)
    loss.backward()
    torch.testing.assert_close(loss, GradientMatchingLoss()(pred, target, mask))
    assert torch.isfinite(dirty.grad).all()
