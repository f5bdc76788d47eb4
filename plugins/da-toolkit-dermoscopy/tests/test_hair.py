"""HairArtefacts: contract (shape, range, seeding, replay) and hand-worked renderings."""

from __future__ import annotations

import math

import pytest
import torch

from da_toolkit.perturb import PhotometricSequence
from da_toolkit_dermoscopy import HairArtefacts
from da_toolkit_dermoscopy.hair import polyline_distance


def one_hair(size: int, start, end, width_px: float, colour=(0.0, 0.0, 0.0), opacity=1.0, bend=0.0):
    """Params drawing one straight (or bent) hair on ``size x size`` images (fractions of the side)."""
    s, e = torch.tensor([start], dtype=torch.float32), torch.tensor([end], dtype=torch.float32)
    mid = (s + e) / 2
    return {
        "applied": torch.tensor([True]),
        "count": torch.tensor([1]),
        "start": s[None],
        "control": (mid + torch.tensor([[0.0, bend]]))[None],
        "end": e[None],
        "width": torch.tensor([[width_px / size]]),
        "colour": torch.tensor([[colour]]),
        "opacity": torch.tensor([[opacity]]),
    }


def test_output_contract_and_darkening() -> None:
    images = torch.rand(4, 3, 40, 56) * 0.5 + 0.5
    out = HairArtefacts(p=1.0, count=(3, 6), seed=1)(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    # hairs are darker (<= 0.25 * 1.3) than these bright images: pixels only get darker
    assert bool((out <= images + 1e-6).all())
    changed = (out < images - 1e-3).any(dim=1).float().mean(dim=(1, 2))
    assert bool((changed > 0).all()) and bool((changed < 0.5).all())


def test_p_zero_and_zero_count_leave_images_untouched() -> None:
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(HairArtefacts(p=0.0, seed=0)(images), images)
    assert torch.equal(HairArtefacts(p=1.0, count=(0, 0), seed=0)(images), images)


def test_seeded_and_replayable() -> None:
    images = torch.rand(2, 3, 48, 48)
    a, b = HairArtefacts(p=1.0, seed=7), HairArtefacts(p=1.0, seed=7)
    out_a = a(images)
    assert torch.equal(out_a, b(images))
    assert torch.equal(a.apply(images, a.last_params), out_a)  # replay from recorded params
    assert not torch.equal(HairArtefacts(p=1.0, seed=8)(images), out_a)
    # per-call generator overrides the module's
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(a(images, generator=g1), b(images, generator=g2))


def test_params_are_documented_shapes() -> None:
    params = HairArtefacts(count=(2, 5), seed=0).sample_params(3)
    assert params["applied"].shape == (3,) and params["count"].shape == (3,)
    assert all(params[k].shape == (3, 5, 2) for k in ("start", "control", "end"))
    assert params["width"].shape == (3, 5) and params["opacity"].shape == (3, 5)
    assert params["colour"].shape == (3, 5, 3)
    assert bool(((params["count"] >= 2) & (params["count"] <= 5)).all())


def test_horizontal_hair_matches_closed_form_coverage() -> None:
    """A black hair of width 3 px along y = 10 px on a white 20x20 image: rows at distance d
    from the line get alpha = clamp(1.5 + 0.5 - d, 0, 1) (pixel centres at i + 0.5)."""
    size = 20
    params = one_hair(size, start=(-0.5, 0.5), end=(1.5, 0.5), width_px=3.0)
    out = HairArtefacts().apply(torch.ones(1, 3, size, size), params)
    for row in range(size):
        d = abs(row + 0.5 - 10.0)
        expected = 1.0 - min(max(2.0 - d, 0.0), 1.0)
        assert torch.allclose(out[0, :, row, :], torch.full((3, size), expected), atol=1e-5), row
    # rows 8..11 fully or partly covered: 9 and 10 at d=0.5 -> 0; 8 and 11 at d=1.5 -> 0.5
    assert out[0, 0, 9, 5].item() == pytest.approx(0.0, abs=1e-6)
    assert out[0, 0, 8, 5].item() == pytest.approx(0.5, abs=1e-6)


def test_colour_and_opacity_blend() -> None:
    size = 16
    params = one_hair(size, (0.5, -0.5), (0.5, 1.5), width_px=4.0, colour=(0.2, 0.1, 0.0), opacity=0.5)
    image = torch.full((1, 3, size, size), 0.8)
    out = HairArtefacts().apply(image, params)
    centre = out[0, :, 4, 8]  # column 8: x centre 8.5, distance 0.5 -> full coverage
    expected = 0.8 * 0.5 + torch.tensor([0.2, 0.1, 0.0]) * 0.5
    assert torch.allclose(centre, expected, atol=1e-6)
    assert torch.equal(out[0, :, :, 0], image[0, :, :, 0])  # far column untouched


def test_polyline_distance_against_brute_force() -> None:
    torch.manual_seed(0)
    pts = torch.rand(2, 4, 2) * 12
    dist = polyline_distance(pts, 9, 12)
    for b in range(2):
        for i in range(9):
            for j in range(12):
                p = torch.tensor([j + 0.5, i + 0.5])
                best = math.inf
                for k in range(3):
                    a, c = pts[b, k], pts[b, k + 1]
                    t = float(torch.clamp((p - a) @ (c - a) / ((c - a) @ (c - a)), 0, 1))
                    best = min(best, float(torch.linalg.norm(p - (a + t * (c - a)))))
                assert dist[b, i, j].item() == pytest.approx(best, abs=1e-4)


def test_bent_hair_passes_through_curve_midpoint() -> None:
    """Quadratic Bezier midpoint = (start + 2 control + end) / 4: with control offset 0.4 the
    curve's middle is 0.2 below the chord."""
    size = 50
    params = one_hair(size, (0.1, 0.3), (0.9, 0.3), width_px=2.0, bend=0.4)
    out = HairArtefacts(segments=16).apply(torch.ones(1, 3, size, size), params)
    assert out[0, 0, 25, 25].item() < 0.05  # y = 0.5 * 50 = 25: on the curve
    assert out[0, 0, 15, 25].item() == pytest.approx(1.0)  # on the chord, away from the curve


def test_works_inside_a_photometric_sequence() -> None:
    seq = PhotometricSequence([HairArtefacts(p=1.0)], seed=5)
    images = torch.rand(2, 3, 24, 24)
    out = seq(images)
    assert torch.equal(seq.apply(images, seq.last_params), out)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"p": 1.5}, "p must be in"),
        ({"count": (3, 1)}, "count"),
        ({"width": (0.01, 0.001)}, "width"),
        ({"darkness": (0.0, 2.0)}, "darkness"),
        ({"bend": -1.0}, "bend"),
        ({"segments": 0}, "segments"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HairArtefacts(**kwargs)


def test_bad_images_and_params() -> None:
    hair = HairArtefacts(p=1.0, seed=0)
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        hair(torch.rand(3, 8, 8))
    params = hair.sample_params(2)
    with pytest.raises(ValueError, match="params are for 2 images"):
        hair.apply(torch.rand(3, 3, 8, 8), params)
