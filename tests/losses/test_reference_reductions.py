"""Loss reductions against independent implementations of the reference code.

- SiLog: Depth Anything V2 ``metric_depth/util/loss.py`` pools the valid pixels of the whole batch
  (``target[valid_mask]`` flattens over samples) into one ``sqrt(mean g^2 - lambd mean(g)^2)``.
- Gradient matching: MiDaS' ``GradientLoss`` (the loss Depth Anything V2 says it adapted) defaults
  to ``reduction_batch_based``: per scale, ``sum over the batch / total valid count``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.losses import GradientMatchingLoss, SiLogLoss
from da_toolkit.losses.gradient_matching import gradient_sums


def _np_v2_silog(pred: np.ndarray, target: np.ndarray, valid: np.ndarray, lambd: float = 0.5) -> float:
    diff_log = np.log(target[valid]) - np.log(pred[valid])  # boolean indexing pools the batch
    return float(np.sqrt(np.mean(diff_log**2) - lambd * np.mean(diff_log) ** 2))


def test_silog_default_pools_the_batch_like_v2() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 12, 10, generator=g, dtype=torch.float64) * 15 + 0.5
    target = torch.rand(3, 12, 10, generator=g, dtype=torch.float64) * 19 + 0.5
    valid = torch.rand(3, 12, 10, generator=g) > 0.3
    valid[2, :8] = False  # unequal valid counts: pooling and per-sample averaging differ
    # V2's train.py mask: valid & min_depth <= depth <= max_depth
    v2_mask = valid.numpy() & (target.numpy() >= 1e-3) & (target.numpy() <= 20.0)
    expected = _np_v2_silog(pred.numpy(), target.numpy(), v2_mask)
    got = SiLogLoss(max_depth=20.0)(pred, target, valid).item()
    assert got == pytest.approx(expected, rel=1e-10)
    per_sample = SiLogLoss(max_depth=20.0, reduction="sample")(pred, target, valid).item()
    assert per_sample != pytest.approx(expected, rel=1e-3)


def test_silog_batch_of_one_is_the_same_for_both_reductions_and_empty_is_zero() -> None:
    pred = torch.rand(1, 5, 5, dtype=torch.float64) + 0.5
    target = torch.rand(1, 5, 5, dtype=torch.float64) + 0.5
    torch.testing.assert_close(SiLogLoss()(pred, target), SiLogLoss(reduction="sample")(pred, target))
    p = pred.clone().requires_grad_(True)
    loss = SiLogLoss()(p, target, torch.zeros(1, 5, 5, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(p.grad).all()


def _np_hat(d: np.ndarray, m: np.ndarray) -> np.ndarray:
    v = np.sort(d[m])
    c = d - v[(len(v) - 1) // 2]  # lower median
    return np.where(m, c / max(np.abs(c[m]).mean(), 1e-6), 0.0)


def _np_midas_gradient_loss(r: np.ndarray, m: np.ndarray, scales: int) -> float:
    """MiDaS GradientLoss(reduction='batch-based') on a residual ``r`` (B,H,W), mask ``m``."""
    total = 0.0
    for k in range(scales):
        rs, ms = r[:, :: 2**k, :: 2**k] * m[:, :: 2**k, :: 2**k], m[:, :: 2**k, :: 2**k].astype(float)
        gx = np.abs(rs[:, :, 1:] - rs[:, :, :-1]) * ms[:, :, 1:] * ms[:, :, :-1]
        gy = np.abs(rs[:, 1:, :] - rs[:, :-1, :]) * ms[:, 1:, :] * ms[:, :-1, :]
        image_loss = gx.sum(axis=(1, 2)) + gy.sum(axis=(1, 2))
        divisor = ms.sum()
        total += 0.0 if divisor == 0 else image_loss.sum() / divisor
    return total


def test_gradient_matching_default_is_midas_batch_based() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(4, 16, 13, generator=g, dtype=torch.float64)
    target = torch.rand(4, 16, 13, generator=g, dtype=torch.float64)
    mask = torch.rand(4, 16, 13, generator=g) > 0.25
    mask[3, :10] = False
    p, t, m = pred.numpy(), target.numpy(), mask.numpy()
    residual = np.stack([_np_hat(p[i], m[i]) - _np_hat(t[i], m[i]) for i in range(4)])
    expected = _np_midas_gradient_loss(residual, m, 4)
    assert GradientMatchingLoss(scales=4)(pred, target, mask).item() == pytest.approx(expected, rel=1e-10)
    assert GradientMatchingLoss(scales=4, reduction="sample")(pred, target, mask).item() != pytest.approx(
        expected, rel=1e-3
    )


def test_gradient_matching_reductions_agree_for_one_sample_and_empty_batch_backpropagates() -> None:
    pred = torch.rand(1, 9, 9, dtype=torch.float64)
    target = torch.rand(1, 9, 9, dtype=torch.float64)
    a = GradientMatchingLoss(scales=3)(pred, target)
    b = GradientMatchingLoss(scales=3, reduction="sample")(pred, target)
    torch.testing.assert_close(a, b)
    p = torch.rand(2, 6, 6, requires_grad=True)
    loss = GradientMatchingLoss()(p, torch.rand(2, 6, 6), torch.zeros(2, 6, 6, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(p.grad).all()
    with pytest.raises(ValueError, match="reduction"):
        GradientMatchingLoss(reduction="mean")  # type: ignore[arg-type]


def test_gradient_sums_hand_worked() -> None:
    r = torch.tensor([[[0.0, 1.0], [3.0, 1.0]]])
    m = torch.tensor([[[True, True], [True, False]]])
    total, count = gradient_sums(r, m)
    # dx: |1-0| (both valid); (3,1) pair has an invalid pixel. dy: |3-0|; (1,1) pair invalid.
    assert total.item() == 4.0 and count.item() == 3.0
