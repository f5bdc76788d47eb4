"""CutMix: mask semantics, pairing, box geometry, replay, seeding."""

from __future__ import annotations

import pytest
import torch

from da_toolkit.perturb import CutMix, box_area_fraction, mix_with_mask


def _images(b: int = 6, h: int = 20, w: int = 24) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_mixed_images_follow_mask_and_pairing() -> None:
    x = _images()
    out = CutMix(p=1.0, seed=0)(x)
    assert out.mask.shape == (6, 20, 24) and out.mask.dtype == torch.bool
    for i in range(6):
        j = int(out.pairing[i])
        for yy in range(20):
            for xx in range(24):
                src = i if out.mask[i, yy, xx] else j
                assert torch.equal(out.mixed[i, :, yy, xx], x[src, :, yy, xx])


def test_pairing_is_a_derangement_and_boxes_respect_the_ranges() -> None:
    cutmix = CutMix(p=1.0, area=(0.05, 0.3), aspect=(0.5, 2.0), seed=1)
    for _ in range(20):
        out = cutmix(_images(b=5, h=40, w=40))
        assert sorted(out.pairing.tolist()) == list(range(5))
        assert all(int(out.pairing[i]) != i for i in range(5))
        boxes = out.params["boxes"]
        h = boxes[:, 2] - boxes[:, 0]
        w = boxes[:, 3] - boxes[:, 1]
        # the mask hole is exactly the box
        torch.testing.assert_close(box_area_fraction(out.mask), (h * w).float() / 1600)
        # area and aspect within the ranges up to rounding of the sides to pixels
        assert ((h * w).float() / 1600 >= 0.05 * 0.7).all() and ((h * w).float() / 1600 <= 0.3 * 1.3).all()
        assert ((w.float() / h.float()) >= 0.5 * 0.7).all() and ((w.float() / h.float()) <= 2.0 * 1.3).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 40).all() and (boxes[:, 3] <= 40).all()


def test_probability_zero_leaves_the_batch_unchanged() -> None:
    x = _images()
    out = CutMix(p=0.0)(x)
    assert out.mask.all() and torch.equal(out.mixed, x)


def test_replay_and_seeding() -> None:
    x = _images()
    cutmix = CutMix(p=0.5, seed=3)
    out = cutmix(x)
    again = cutmix.apply(x, cutmix.last_params)
    assert torch.equal(again.mixed, out.mixed) and torch.equal(again.mask, out.mask)
    assert torch.equal(CutMix(seed=3)(x).mixed, out.mixed)
    with pytest.raises(ValueError, match="sampled for"):
        cutmix.apply(_images(h=10), out.params)


def test_mix_with_mask_mixes_depth_like_images() -> None:
    x = _images()
    out = CutMix(p=1.0, seed=4)(x)
    depth = x[:, 0]
    mixed_depth = mix_with_mask(depth, out.mask, out.pairing)
    torch.testing.assert_close(mixed_depth, out.mixed[:, 0])


def test_single_sample_batch_is_unchanged() -> None:
    x = _images(b=1)
    out = CutMix(p=1.0, seed=0)(x)
    assert out.pairing.tolist() == [0] and torch.equal(out.mixed, x)


def test_boxes_that_do_not_fit_are_redrawn() -> None:
    # on a 10x40 image a box of 40% area with aspect w/h < 1.6 is taller than the image:
    # with rejection, every box keeps its drawn aspect (no cut), so its area stays >= 30% (rounding)
    cutmix = CutMix(p=1.0, area=(0.4, 0.4), aspect=(0.3, 3.3), seed=0, tries=50)
    out = cutmix(torch.rand(64, 3, 10, 40))
    boxes = out.params["boxes"]
    h = (boxes[:, 2] - boxes[:, 0]).float()
    w = (boxes[:, 3] - boxes[:, 1]).float()
    assert (h * w / 400 >= 0.3).all() and (w / h >= 1.6 * 0.8).all()
    # with a single candidate, a box that does not fit is cut to the image instead
    cut = CutMix(p=1.0, area=(0.4, 0.4), aspect=(0.3, 0.3), seed=0, tries=1)(torch.rand(4, 3, 10, 40))
    assert ((cut.params["boxes"][:, 2] - cut.params["boxes"][:, 0]) == 10).all()
