"""Alignment modes against closed forms and numpy.linalg.lstsq."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.metrics import (
    align_lstsq_depth,
    align_lstsq_disparity,
    align_median,
    align_none,
    lstsq_scale_shift,
)


def test_lstsq_matches_numpy_lstsq_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 7, 8, generator=g)
    target = torch.rand(3, 7, 8, generator=g) * 4 + 1
    mask = torch.rand(3, 7, 8, generator=g) > 0.3
    scale, shift = lstsq_scale_shift(pred, target, mask)
    for i in range(3):
        p = pred[i][mask[i]].double().numpy()
        a = np.stack([p, np.ones_like(p)], axis=1)
        (s, t), *_ = np.linalg.lstsq(a, target[i][mask[i]].double().numpy(), rcond=None)
        assert scale[i].item() == pytest.approx(s, rel=1e-9)
        assert shift[i].item() == pytest.approx(t, rel=1e-9, abs=1e-12)


def test_lstsq_degenerate_cases() -> None:
    pred = torch.ones(2, 2, 2)
    target = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])
    mask = torch.ones(2, 2, 2, dtype=torch.bool)
    mask[1] = False
    scale, shift = lstsq_scale_shift(pred, target, mask)
    assert scale.tolist() == [0.0, 1.0]  # constant pred: s = 0, t = mean; empty: identity
    assert shift.tolist() == [2.5, 0.0]


def test_lstsq_disparity_recovers_depth_from_an_affine_disparity() -> None:
    depth = torch.rand(2, 6, 6, dtype=torch.float64) * 9 + 1
    disparity = (1.0 / depth - 0.05) / 3.0  # s = 3, t = 0.05
    mask = torch.ones_like(depth, dtype=torch.bool)
    aligned = align_lstsq_disparity(disparity, depth, mask, 1e-3, 80.0)
    torch.testing.assert_close(aligned, depth)


def test_lstsq_disparity_clamps_to_the_depth_caps() -> None:
    # disparity fitted exactly on two pixels; a third, unmasked pixel falls outside the caps
    depth = torch.tensor([[[1.0, 2.0, 1.0]]], dtype=torch.float64)
    pred = torch.tensor([[[1.0, 0.5, -5.0]]], dtype=torch.float64)  # aligned disparity = pred
    mask = torch.tensor([[[True, True, False]]])
    aligned = align_lstsq_disparity(pred, depth, mask, 0.1, 10.0)
    torch.testing.assert_close(aligned, torch.tensor([[[1.0, 2.0, 10.0]]], dtype=torch.float64))
    pred_near = torch.tensor([[[1.0, 0.5, 50.0]]], dtype=torch.float64)
    assert align_lstsq_disparity(pred_near, depth, mask, 0.1, 10.0)[0, 0, 2].item() == pytest.approx(0.1)


def test_lstsq_depth_and_median_and_none() -> None:
    depth = torch.rand(1, 5, 5, dtype=torch.float64) * 5 + 1
    mask = torch.ones_like(depth, dtype=torch.bool)
    torch.testing.assert_close(align_lstsq_depth(2 * depth - 1, depth, mask, 1e-3, 80.0), depth)
    # median: pred [1,2,3,4] (lower median 2) vs target [4,6,8,10] (lower median 6) -> scale 3
    pred = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    target = torch.tensor([[[4.0, 6.0, 8.0, 10.0]]])
    ones = torch.ones_like(pred, dtype=torch.bool)
    torch.testing.assert_close(align_median(pred, target, ones, 1e-3, 80.0), torch.tensor([[[3.0, 6.0, 9.0, 12.0]]]))
    torch.testing.assert_close(align_none(torch.tensor([0.0, 5.0, 100.0]), None, None, 0.5, 80.0),
                               torch.tensor([0.5, 5.0, 80.0]))


def test_lstsq_hand_worked_closed_form() -> None:
    # target = 2 * pred + 1 exactly on the valid pixels; the masked-out pixel is an outlier
    pred = torch.tensor([[[0.0, 1.0, 2.0, 3.0]]])
    target = torch.tensor([[[1.0, 3.0, 5.0, 100.0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    scale, shift = lstsq_scale_shift(pred, target, mask)
    assert scale.item() == pytest.approx(2.0) and shift.item() == pytest.approx(1.0)
    # a non-exact fit: pred [0,1,2], target [0,2,1] -> s = 0.5, t = 0.5 (normal equations)
    scale, shift = lstsq_scale_shift(torch.tensor([[[0.0, 1.0, 2.0]]]), torch.tensor([[[0.0, 2.0, 1.0]]]),
                                     torch.ones(1, 1, 3, dtype=torch.bool))
    assert scale.item() == pytest.approx(0.5) and shift.item() == pytest.approx(0.5)


def test_lstsq_ignores_non_finite_values_outside_the_mask() -> None:
    g = torch.Generator().manual_seed(4)
    pred = torch.rand(2, 5, 6, generator=g)
    target = torch.rand(2, 5, 6, generator=g) + 1
    mask = torch.rand(2, 5, 6, generator=g) > 0.3
    dirty_pred = pred.masked_fill(~mask, float("nan"))
    dirty_target = target.masked_fill(~mask, float("inf"))
    clean = lstsq_scale_shift(pred, target, mask)
    dirty = lstsq_scale_shift(dirty_pred, dirty_target, mask)
    torch.testing.assert_close(dirty, clean)
    assert all(torch.isfinite(v).all() for v in dirty)
