"""CutMixRegionLoss: any region loss made CutMix-aware; the public masked-reduction module."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from da_toolkit.losses import (
    AffineInvariantLoss,
    CutMixAffineInvariantLoss,
    CutMixRegionLoss,
)
from da_toolkit.plugins import get_component


class MeanAbsLoss(nn.Module):
    """Mean |pred - target| over the valid pixels of the whole batch (no per_sample method)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int]] = []

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        self.calls.append((pred.shape[0], int(mask.sum())))
        return (pred - target).abs()[mask].mean()


class ForwardOnly(nn.Module):
    """Hides ``per_sample`` of the wrapped loss, so the wrapper takes its per-sample loop."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return self.inner(pred, target, mask)


def test_hand_worked_area_weighting() -> None:
    # 1x2x2 images; M takes the left column from a, the right column from b.
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    target_a = torch.tensor([[[2.0, 0.0], [3.0, 0.0]]])  # |diff| on the left column: 1, 0 -> mean 0.5
    target_b = torch.tensor([[[0.0, 5.0], [0.0, 1.0]]])  # |diff| on the right column: 3, 3 -> mean 3
    mask = torch.tensor([[[True, False], [True, False]]])
    loss = CutMixRegionLoss(MeanAbsLoss())(pred, target_a, target_b, mask)
    assert loss.item() == pytest.approx(0.5 * 0.5 + 0.5 * 3.0)
    # valid removes the pixel (0, 1) of region b: region b = |4 - 1| = 3; area weights stay 1/2
    valid = torch.tensor([[[True, False], [True, True]]])
    assert CutMixRegionLoss(MeanAbsLoss())(pred, target_a, target_b, mask, valid).item() == pytest.approx(1.75)
    # a quarter from a: area 1/4 * |1-2| + 3/4 * mean(|2-5|, |3-0|, |4-1|) = 0.25 + 2.25
    quarter = torch.tensor([[[True, False], [False, False]]])
    assert CutMixRegionLoss(MeanAbsLoss())(pred, target_a, target_b, quarter).item() == pytest.approx(2.5)


def test_region_loss_sees_one_sample_and_region_at_a_time_and_never_an_empty_region() -> None:
    g = torch.Generator().manual_seed(0)
    pred, ta, tb = (torch.rand(3, 4, 5, generator=g) for _ in range(3))
    mask = torch.ones(3, 4, 5, dtype=torch.bool)
    mask[1, :, 2:] = False  # sample 1 mixed, samples 0 and 2 all from a
    region = MeanAbsLoss()
    loss = CutMixRegionLoss(region)(pred, ta, tb, mask)
    assert sorted(region.calls) == sorted([(1, 20), (1, 8), (1, 12), (1, 20)])
    per = [(pred[0] - ta[0]).abs().mean(), 0.4 * (pred[1] - ta[1]).abs()[:, :2].mean()
           + 0.6 * (pred[1] - tb[1]).abs()[:, 2:].mean(), (pred[2] - ta[2]).abs().mean()]  # fmt: skip
    assert loss.item() == pytest.approx(float(sum(per)) / 3, rel=1e-6)


@pytest.mark.parametrize("trim", [0.0, 0.1])
def test_loop_path_equals_per_sample_path_and_the_builtin_cutmix_loss(trim: float) -> None:
    g = torch.Generator().manual_seed(4)
    pred, ta, tb = (torch.rand(4, 8, 10, generator=g) for _ in range(3))
    mask = torch.rand(4, 8, 10, generator=g) > 0.4
    mask[3] = True
    valid = torch.rand(4, 8, 10, generator=g) > 0.1
    vectorised = CutMixRegionLoss(AffineInvariantLoss(trim=trim))(pred, ta, tb, mask, valid)
    looped = CutMixRegionLoss(ForwardOnly(AffineInvariantLoss(trim=trim)))(pred, ta, tb, mask, valid)
    builtin = CutMixAffineInvariantLoss(trim=trim)(pred, ta, tb, mask, valid)
    torch.testing.assert_close(looped, vectorised)
    torch.testing.assert_close(builtin, vectorised)


def test_no_valid_pixel_gives_a_zero_that_backpropagates() -> None:
    pred = torch.full((2, 3, 3), float("nan")).requires_grad_(True)  # NaNs of invalid pixels never leak
    target = torch.rand(2, 3, 3)
    mask = torch.rand(2, 3, 3) > 0.5
    loss = CutMixRegionLoss(MeanAbsLoss())(pred, target, target, mask, torch.zeros(2, 3, 3, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and pred.grad is not None and torch.all(pred.grad == 0)


def test_registered_and_bad_inputs_named() -> None:
    assert get_component("losses", "cutmix_region") is CutMixRegionLoss
    with pytest.raises(TypeError, match="region_loss must be a callable"):
        CutMixRegionLoss(3)  # type: ignore[arg-type]
    pred = torch.rand(1, 2, 2)
    with pytest.raises(ValueError, match="CutMixRegionLoss: mask must be a bool"):
        CutMixRegionLoss(MeanAbsLoss())(pred, pred, pred, torch.ones(1, 2, 2))


def test_masked_helpers_public_and_old_path_kept() -> None:
    from da_toolkit.losses import _masked, masked

    assert set(masked.__all__) == {"check_depth_inputs", "masked_mean", "masked_median", "mean_over_samples", "upcast"}
    for name in masked.__all__:
        assert getattr(_masked, name) is getattr(masked, name)
    x = torch.tensor([[1.0, 2.0, 9.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    m = torch.tensor([[True, True, False, True], [False, False, False, False]])
    torch.testing.assert_close(masked.masked_mean(x, m), torch.tensor([7.0 / 3, 0.0]))
    torch.testing.assert_close(masked.masked_median(x, m), torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(masked.mean_over_samples(torch.tensor([3.0, 100.0]), m.any(dim=1)), torch.tensor(3.0))
