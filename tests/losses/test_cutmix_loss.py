"""CutMixAffineInvariantLoss: region weighting, reduction to the plain loss."""

from __future__ import annotations

import pytest
import torch

from da_toolkit.losses import AffineInvariantLoss, CutMixAffineInvariantLoss


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(3, 8, 10, generator=g), torch.rand(3, 8, 10, generator=g), torch.rand(3, 8, 10, generator=g))


def test_all_ones_mask_equals_plain_loss() -> None:
    pred, ta, tb = _data()
    valid = torch.rand(3, 8, 10) > 0.2
    ones = torch.ones(3, 8, 10, dtype=torch.bool)
    for trim in (0.0, 0.1):
        got = CutMixAffineInvariantLoss(trim=trim)(pred, ta, tb, ones, valid)
        torch.testing.assert_close(got, AffineInvariantLoss(trim=trim)(pred, ta, valid))
    # all False: everything comes from b
    got = CutMixAffineInvariantLoss()(pred, ta, tb, ~ones)
    torch.testing.assert_close(got, AffineInvariantLoss(trim=0.1)(pred, tb))


def test_area_weighted_regions_match_a_per_sample_computation() -> None:
    pred, ta, tb = _data(3)
    mask = torch.ones(3, 8, 10, dtype=torch.bool)
    mask[0, 2:6, 3:8] = False  # 20 of 80 pixels from b
    mask[1, :, 5:] = False  # half
    # sample 2 unmixed
    plain = AffineInvariantLoss(trim=0.1)
    expected = []
    for i in range(3):
        m = mask[i : i + 1]
        area = m.float().mean().item()
        # each region evaluated on its own pixels only, via boolean indexing into (1,1,N) maps
        la = plain(pred[i][m[0]][None, None], ta[i][m[0]][None, None]).item() if m.any() else 0.0
        lb = plain(pred[i][~m[0]][None, None], tb[i][~m[0]][None, None]).item() if (~m).any() else 0.0
        expected.append(area * la + (1 - area) * lb)
    got = CutMixAffineInvariantLoss(trim=0.1)(pred, ta, tb, mask).item()
    assert got == pytest.approx(sum(expected) / 3, rel=1e-5)


def test_empty_valid_mask_backpropagates() -> None:
    pred, ta, tb = _data()
    pred.requires_grad_(True)
    mask = torch.rand(3, 8, 10) > 0.5
    loss = CutMixAffineInvariantLoss()(pred, ta, tb, mask, torch.zeros(3, 8, 10, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(pred.grad).all()


def test_shape_errors() -> None:
    pred, ta, tb = _data()
    with pytest.raises(ValueError, match="mask"):
        CutMixAffineInvariantLoss()(pred, ta, tb, torch.ones(3, 8, 9, dtype=torch.bool))


def test_constant_maps_have_finite_gradients() -> None:
    pred = torch.full((2, 6, 6), 0.5, requires_grad=True)
    mask = torch.ones(2, 6, 6, dtype=torch.bool)
    mask[:, 2:4, 2:5] = False
    loss = CutMixAffineInvariantLoss()(pred, torch.ones(2, 6, 6), torch.zeros(2, 6, 6), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()


def test_hand_worked_value() -> None:
    # 1x1x4 image; the first two pixels come from u_a (M True), the last two from u_b
    pred = torch.tensor([[[0.0, 1.0, 0.0, 3.0]]])
    target_a = torch.tensor([[[0.0, 2.0, 9.0, 9.0]]])
    target_b = torch.tensor([[[7.0, 7.0, 5.0, 1.0]]])
    mask = torch.tensor([[[True, True, False, False]]])
    # region a: pred [0,1] -> hat [0,2]; target_a [0,2] -> hat [0,2]; loss 0
    # region b: pred [0,3] (lower median 0, mean|c| 1.5) -> hat [0,2];
    #           target_b [5,1] (lower median 1, mean|c| 2) -> hat [2,0]; loss (2 + 2) / 2 = 2
    # area-weighted: 0.5 * 0 + 0.5 * 2 = 1
    got = CutMixAffineInvariantLoss(trim=0.0)(pred, target_a, target_b, mask)
    assert got.item() == pytest.approx(1.0, rel=1e-6)


class _NoPerSample(torch.nn.Module):
    """The affine-invariant loss without ``per_sample``: CutMixRegionLoss calls it per sample and region."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = AffineInvariantLoss(trim=0.1)

    def forward(self, pred, target, mask):
        return self.inner(pred, target, mask)


def test_the_batched_regions_equal_one_call_per_sample_and_region() -> None:
    from da_toolkit.losses import CutMixRegionLoss

    pred, ta, tb = _data(5)
    mask = torch.ones(3, 8, 10, dtype=torch.bool)
    mask[0, 1:5, 2:9] = False
    mask[2, 4:, :] = False
    valid = torch.rand(3, 8, 10, generator=torch.Generator().manual_seed(1)) > 0.1
    a, b = pred.clone().requires_grad_(True), pred.clone().requires_grad_(True)
    batched = CutMixAffineInvariantLoss(trim=0.1)(a, ta, tb, mask, valid)
    looped = CutMixRegionLoss(_NoPerSample())(b, ta, tb, mask, valid)
    torch.testing.assert_close(batched, looped)
    batched.backward()
    looped.backward()
    torch.testing.assert_close(a.grad, b.grad)
