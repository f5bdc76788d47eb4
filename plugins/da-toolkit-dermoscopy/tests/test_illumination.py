"""IlluminationShift: closed-form output, cast without brightness change, seeding, replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit_dermoscopy import IlluminationShift


def test_matches_numpy_closed_form() -> None:
    h, w = 5, 7
    images = torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(0))
    params = {
        "applied": torch.tensor([True, False]),
        "gain": torch.tensor([[1.2, 1.0, 0.8], [2.0, 2.0, 2.0]]),
        "exposure": torch.tensor([1.1, 1.0]),
        "vignette": torch.tensor([0.5, 0.0]),
    }
    out = IlluminationShift().apply(images, params).numpy()
    x = np.linspace(-1, 1, w)[None, :]
    y = np.linspace(-1, 1, h)[:, None]
    falloff = 1 - 0.5 * (x**2 + y**2) / 2
    expected = np.clip(images[0].numpy() * np.array([1.2, 1.0, 0.8])[:, None, None] * 1.1 * falloff, 0, 1)
    np.testing.assert_allclose(out[0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[1], images[1].numpy())  # not applied
    # vignette 0.5: the corners get half the light, the centre all of it
    assert falloff[0, 0] == pytest.approx(0.5) and falloff[h // 2, w // 2] == pytest.approx(1.0)


def test_sampled_cast_keeps_geometric_mean_and_bounds() -> None:
    shift = IlluminationShift(max_cast=0.2, exposure=(0.9, 1.1), vignette=(0.1, 0.3))
    params = shift.sample_params(64, torch.Generator().manual_seed(1))
    log_gain = params["gain"].log()
    assert torch.allclose(log_gain.mean(dim=1), torch.zeros(64), atol=1e-6)
    assert float(log_gain.abs().max()) <= 0.4 + 1e-6  # centred values of U(-0.2, 0.2)
    assert bool(((params["exposure"] >= 0.9) & (params["exposure"] <= 1.1)).all())
    assert bool(((params["vignette"] >= 0.1) & (params["vignette"] <= 0.3)).all())


def test_seeded_replayable_and_identity_when_off() -> None:
    images = torch.rand(3, 3, 16, 16)
    a, b = IlluminationShift(p=1.0, seed=4), IlluminationShift(p=1.0, seed=4)
    out = a(images)
    assert torch.equal(out, b(images))
    assert torch.equal(a.apply(images, a.last_params), out)
    assert not torch.equal(out, images)
    assert torch.equal(IlluminationShift(p=0.0, seed=0)(images), images)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_cast": -0.1}, "max_cast"), ({"exposure": (0.0, 1.0)}, "exposure"), ({"vignette": (0.5, 1.5)}, "vignette"),
     ({"p": -0.1}, "p must be in")],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        IlluminationShift(**kwargs)


def test_params_batch_mismatch() -> None:
    shift = IlluminationShift(seed=0)
    with pytest.raises(ValueError, match="params are for 2 images"):
        shift.apply(torch.rand(3, 3, 4, 4), shift.sample_params(2))
