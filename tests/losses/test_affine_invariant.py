"""AffineInvariantLoss, normalize_affine, trimmed_mean and the disparity-target helper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from da_toolkit.losses import AffineInvariantLoss, depth_to_normalized_disparity, normalize_affine, trimmed_mean


def _np_lower_median(x: np.ndarray) -> float:
    s = np.sort(x)
    return float(s[(len(s) - 1) // 2])


def _np_loss(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, trim: float) -> float:
    """Independent reference: per-sample loop, sort-based lower median and trimming."""
    losses = []
    for p, t, m in zip(pred, target, mask, strict=True):
        p, t = p[m].astype(np.float64), t[m].astype(np.float64)
        if p.size == 0:
            continue
        hats = []
        for d in (p, t):
            c = d - _np_lower_median(d)
            hats.append(c / max(np.abs(c).mean(), 1e-6))
        r = np.sort(np.abs(hats[0] - hats[1]))
        keep = r.size - int(np.floor(trim * r.size))
        losses.append(r[:keep].mean())
    return float(np.mean(losses)) if losses else 0.0


def test_hand_worked_value() -> None:
    pred = torch.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    target = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 10.0]]])
    # target: median 2, mean|c| = 12/5 -> hat [-2,-1,0,1,8]/2.4; pred: median 3, mean|c| = 6/5
    # residuals [5/6, 5/12, 0, 5/12, 5/3] -> mean 2/3
    assert AffineInvariantLoss()(pred, target).item() == pytest.approx(2 / 3, rel=1e-6)
    # trim 0.2 of 5 pixels drops exactly the largest (5/3): mean of the other four = 5/12
    assert AffineInvariantLoss(trim=0.2)(pred, target).item() == pytest.approx(5 / 12, rel=1e-6)


def test_normalize_uses_lower_median_for_even_counts() -> None:
    d = torch.tensor([[[1.0, 2.0, 3.0, 10.0]]])
    mask = torch.ones_like(d, dtype=torch.bool)
    # lower median 2, centred [-1,0,1,8], mean |c| = 2.5
    expected = torch.tensor([[[-0.4, 0.0, 0.4, 3.2]]])
    torch.testing.assert_close(normalize_affine(d, mask), expected)


def test_matches_numpy_reference_with_masks_and_trim() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 7, 9, generator=g)
    target = torch.rand(3, 7, 9, generator=g) * 5
    mask = torch.rand(3, 7, 9, generator=g) > 0.3
    mask[2] = False  # an empty sample is excluded from the mean
    for trim in (0.0, 0.1, 0.35):
        got = AffineInvariantLoss(trim=trim)(pred, target, mask).item()
        want = _np_loss(pred.numpy(), target.numpy(), mask.numpy(), trim)
        assert got == pytest.approx(want, rel=1e-5)


@settings(max_examples=25, deadline=None)
@given(
    a=st.floats(0.01, 100.0),
    b=st.floats(-100.0, 100.0),
    seed=st.integers(0, 2**16),
)
def test_invariant_to_positive_affine_maps_of_pred(a: float, b: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(2, 6, 5, generator=g, dtype=torch.float64)
    target = torch.rand(2, 6, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 6, 5, generator=g) > 0.2
    loss = AffineInvariantLoss()
    torch.testing.assert_close(loss(a * pred + b, target, mask), loss(pred, target, mask), rtol=1e-6, atol=1e-9)
    # and to affine maps of the target
    torch.testing.assert_close(loss(pred, a * target + b, mask), loss(pred, target, mask), rtol=1e-6, atol=1e-9)


def test_zero_for_affine_related_maps_and_positive_otherwise() -> None:
    target = torch.rand(2, 8, 8)
    assert AffineInvariantLoss()(3.0 * target + 1.0, target).item() == pytest.approx(0.0, abs=1e-5)
    assert AffineInvariantLoss()(-target, target).item() > 0.5


def test_invalid_pixels_do_not_matter() -> None:
    pred, target = torch.rand(2, 6, 6), torch.rand(2, 6, 6)
    mask = torch.rand(2, 6, 6) > 0.5
    changed = torch.where(mask, pred, torch.full_like(pred, 1e6))
    loss = AffineInvariantLoss(trim=0.1)
    torch.testing.assert_close(loss(changed, target, mask), loss(pred, target, mask))


def test_mean_over_samples_with_valid_pixels() -> None:
    pred, target = torch.rand(2, 5, 5), torch.rand(2, 5, 5)
    mask = torch.ones(2, 5, 5, dtype=torch.bool)
    mask[1] = False
    loss = AffineInvariantLoss()
    torch.testing.assert_close(loss(pred, target, mask), loss(pred[:1], target[:1]))


def test_empty_mask_gives_zero_that_backpropagates() -> None:
    pred = torch.rand(2, 4, 4, requires_grad=True)
    loss = AffineInvariantLoss(trim=0.1)(pred, torch.rand(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and torch.equal(pred.grad, torch.zeros_like(pred))


def test_constant_maps_have_finite_gradients() -> None:
    pred = torch.full((2, 4, 4), 3.0, requires_grad=True)
    target = torch.full((2, 4, 4), 7.0)
    loss = AffineInvariantLoss()(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() == 0.0
    assert torch.isfinite(pred.grad).all()
    # constant prediction against a varying target: finite loss and gradients too
    pred2 = torch.full((1, 3, 3), 2.0, requires_grad=True)
    loss2 = AffineInvariantLoss(trim=0.2)(pred2, torch.rand(1, 3, 3))
    loss2.backward()
    assert torch.isfinite(loss2) and torch.isfinite(pred2.grad).all()


def test_trimmed_mean_drops_exactly_the_largest_valid_values() -> None:
    values = torch.tensor([[[5.0, 1.0, 7.0, 2.0, 100.0, 3.0, 4.0, 6.0]]])
    mask = torch.tensor([[[True, True, True, True, False, True, True, True]]])
    # 7 valid values; trim 0.3 -> floor(2.1) = 2 dropped (7 and 6); mean of 1..5 = 3
    assert trimmed_mean(values, mask, 0.3).item() == pytest.approx(3.0)
    # trim 0.1 -> floor(0.7) = 0 dropped: mean of the 7 valid values = 4
    assert trimmed_mean(values, mask, 0.1).item() == pytest.approx(4.0)


def test_trimmed_mean_gradient_and_value_per_sample_with_different_valid_counts() -> None:
    # partial selection (topk of floor(trim * pixels)) vs a hand count per sample: 10 pixels,
    # sample 0 all valid (trim 0.25 drops floor(2.5) = 2), sample 1 six valid (drops floor(1.5) = 1)
    values = torch.tensor([[9.0, 1, 2, 3, 4, 5, 6, 7, 8, 0], [3.0, 1, 2, 50, 60, 4, 5, 6, 7, 8]])[:, None]
    mask = torch.ones(2, 1, 10, dtype=torch.bool)
    mask[1, 0, 3:5] = False
    mask[1, 0, 8:] = False  # sample 1 valid: 3, 1, 2, 4, 5, 6 -> drop 6
    x = values.clone().requires_grad_(True)
    out = trimmed_mean(x, mask, 0.25)
    torch.testing.assert_close(out, torch.tensor([sum(range(8)) / 8, (3 + 1 + 2 + 4 + 5) / 5]))
    out.sum().backward()
    want = torch.zeros(2, 1, 10)
    want[0, 0] = 1 / 8
    want[0, 0, [0, 8]] = 0.0  # 9 and 8 dropped
    want[1, 0, [0, 1, 2, 5, 6]] = 1 / 5  # 6 dropped, invalid pixels get nothing
    torch.testing.assert_close(x.grad, want)


def test_bad_inputs_name_the_field() -> None:
    loss = AffineInvariantLoss()
    with pytest.raises(ValueError, match="target"):
        loss(torch.rand(1, 4, 4), torch.rand(1, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        loss(torch.rand(1, 4, 4), torch.rand(1, 4, 4), torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(B,H,W\)"):
        loss(torch.rand(1, 1, 4, 4), torch.rand(1, 1, 4, 4))
    with pytest.raises(ValueError, match="trim"):
        AffineInvariantLoss(trim=1.0)


def test_depth_to_normalized_disparity_hand_values() -> None:
    depth = torch.tensor([[[1.0, 2.0, 4.0, 0.0, 8.0]]])
    valid = torch.tensor([[[True, True, True, False, False]]])
    disp, ok = depth_to_normalized_disparity(depth, valid)
    torch.testing.assert_close(disp, torch.tensor([[[1.0, 0.5, 0.25, 0.0, 0.0]]]))
    assert ok.tolist() == [[[True, True, True, False, False]]]
    sky = torch.tensor([[[False, False, False, False, True]]])
    disp, ok = depth_to_normalized_disparity(depth * 2, valid, sky=sky)
    torch.testing.assert_close(disp, torch.tensor([[[1.0, 0.5, 0.25, 0.0, 0.0]]]))
    assert ok.tolist() == [[[True, True, True, False, True]]]
    with pytest.raises(ValueError, match="valid"):
        depth_to_normalized_disparity(depth, valid.float())


def test_non_finite_targets_at_invalid_pixels_are_harmless() -> None:
    pred = torch.rand(2, 5, 5, requires_grad=True)
    target = torch.rand(2, 5, 5)
    mask = torch.rand(2, 5, 5) > 0.3
    dirty = target.masked_fill(~mask, float("nan"))
    dirty[0, 0, 0] = float("inf") if not mask[0, 0, 0] else dirty[0, 0, 0]
    loss = AffineInvariantLoss(trim=0.1)(pred, dirty, mask)
    loss.backward()
    torch.testing.assert_close(loss, AffineInvariantLoss(trim=0.1)(pred, target, mask))
    assert torch.isfinite(pred.grad).all()


def test_half_precision_inputs_are_computed_in_float32() -> None:
    pred, target = torch.rand(2, 8, 8), torch.rand(2, 8, 8)
    low = AffineInvariantLoss()(pred.bfloat16(), target.bfloat16())
    assert low.dtype == torch.float32
    ref = AffineInvariantLoss()(pred.bfloat16().float(), target.bfloat16().float())
    torch.testing.assert_close(low, ref)


def test_non_finite_predictions_at_invalid_pixels_are_harmless() -> None:
    pred = torch.rand(2, 5, 5)
    target = torch.rand(2, 5, 5)
    mask = torch.rand(2, 5, 5) > 0.3
    mask[1] = False
    dirty = pred.masked_fill(~mask, float("nan")).requires_grad_(True)
    loss = AffineInvariantLoss()(dirty, target, mask)
    loss.backward()
    torch.testing.assert_close(loss, AffineInvariantLoss()(pred, target, mask))
    assert torch.isfinite(dirty.grad).all()
