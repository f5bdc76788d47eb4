"""Photometric perturbations: torchvision/numpy references, replay, seeding, probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from da_toolkit.perturb import (
    ColorJitter,
    GaussianBlur,
    PhotometricSequence,
    RandomGrayscale,
    StrongPhotometric,
)


def _images(seed: int = 0, b: int = 4, h: int = 16, w: int = 20) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_color_jitter_matches_torchvision_with_the_recorded_params() -> None:
    x = _images()
    jitter = ColorJitter(p=1.0, seed=3)
    y = jitter(x)
    params = jitter.last_params
    assert params is not None
    ops = {
        0: lambda im, i: TF.adjust_brightness(im, params["brightness"][i].item()),
        1: lambda im, i: TF.adjust_contrast(im, params["contrast"][i].item()),
        2: lambda im, i: TF.adjust_saturation(im, params["saturation"][i].item()),
        3: lambda im, i: TF.adjust_hue(im, params["hue"][i].item()),
    }
    for i in range(x.shape[0]):
        ref = x[i]
        for k in params["order"][i].tolist():
            ref = ops[k](ref, i)
        torch.testing.assert_close(y[i], ref, atol=1e-4, rtol=0)


def test_param_ranges_follow_the_spec_defaults() -> None:
    params = ColorJitter(seed=0).sample_params(4000)
    for key in ("brightness", "contrast", "saturation"):
        assert params[key].min() >= 0.5 and params[key].max() <= 1.5
    assert params["hue"].abs().max() <= 0.25
    assert (params["order"].sort(dim=1).values == torch.arange(4)).all()
    assert len({tuple(o) for o in params["order"].tolist()}) == 24  # every order occurs
    assert 0.77 < params["applied"].float().mean().item() < 0.83  # p = 0.8


@pytest.mark.parametrize(
    "make",
    [
        lambda: ColorJitter(p=0.6),
        lambda: RandomGrayscale(p=0.5),
        lambda: GaussianBlur(p=0.5),
        lambda: StrongPhotometric(),
    ],
)
def test_replay_from_recorded_params_reproduces_the_output(make) -> None:
    x = _images(1, b=6)
    module = make()
    y = module(x)
    torch.testing.assert_close(module.apply(x, module.last_params), y, rtol=0, atol=0)
    torch.testing.assert_close(module(x, params=module.last_params), y, rtol=0, atol=0)


def test_seeds_and_generators_make_runs_reproducible() -> None:
    x = _images(2)
    assert torch.equal(StrongPhotometric(seed=5)(x), StrongPhotometric(seed=5)(x))
    assert not torch.equal(StrongPhotometric(seed=5)(x), StrongPhotometric(seed=6)(x))
    a = ColorJitter(p=1.0)(x, generator=torch.Generator().manual_seed(9))
    b = ColorJitter(p=1.0)(x, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


def test_probability_zero_and_one() -> None:
    x = _images(3)
    for module in (ColorJitter(p=0.0), RandomGrayscale(p=0.0), GaussianBlur(p=0.0)):
        assert torch.equal(module(x), x)
    for module in (ColorJitter(p=1.0, seed=0), RandomGrayscale(p=1.0), GaussianBlur(p=1.0, seed=0)):
        changed = (module(x) - x).flatten(1).abs().amax(dim=1)
        assert (changed > 1e-3).all()


def test_grayscale_is_the_itu_601_luma() -> None:
    x = _images(4)
    y = RandomGrayscale(p=1.0)(x)
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for c in range(3):
        torch.testing.assert_close(y[:, c], luma, atol=1e-3, rtol=0)


def _np_blur(img: np.ndarray, sigma: float, size: int) -> np.ndarray:
    half = size // 2
    k = np.exp(-((np.arange(size) - half) ** 2) / (2 * sigma**2))
    k /= k.sum()
    padded = np.pad(img, ((0, 0), (half, half), (half, half)), mode="reflect")
    rows = np.stack([np.convolve(r, k, mode="valid") for r in padded.reshape(-1, padded.shape[-1])])
    rows = rows.reshape(img.shape[0], padded.shape[1], img.shape[2])
    cols = np.stack([np.convolve(c, k, mode="valid") for c in rows.transpose(0, 2, 1).reshape(-1, rows.shape[1])])
    return cols.reshape(img.shape[0], img.shape[2], img.shape[1]).transpose(0, 2, 1)


def test_gaussian_blur_matches_a_numpy_separable_convolution() -> None:
    x = _images(5, b=2)
    blur = GaussianBlur(sigma=(0.5, 1.5), p=1.0, seed=1)
    assert blur.kernel_size == 2 * math.ceil(4.5) + 1
    y = blur(x)
    sigmas = blur.last_params["sigma"]
    for i in range(2):
        ref = _np_blur(x[i].double().numpy(), float(sigmas[i]), blur.kernel_size)
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-5)


def test_constant_images_are_unchanged_by_blur() -> None:
    x = torch.full((2, 3, 16, 16), 0.3)
    torch.testing.assert_close(GaussianBlur(p=1.0)(x), x)


def test_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="p must be"):
        ColorJitter(p=1.5)
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="sigma"):
        GaussianBlur(sigma=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        ColorJitter()(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="too small"):
        GaussianBlur(p=1.0)(torch.rand(1, 3, 5, 5))
    with pytest.raises(ValueError, match="step 0"):
        PhotometricSequence([torch.nn.Identity()])  # type: ignore[list-item]


def test_strong_photometric_defaults_and_sequence_params() -> None:
    strong = StrongPhotometric()
    jitter, gray, blur = strong.steps
    assert isinstance(jitter, ColorJitter) and jitter.p == 0.8 and jitter.hue == 0.25
    assert jitter.ranges["brightness"] == (0.5, 1.5)
    assert isinstance(gray, RandomGrayscale) and gray.p == 0.2
    assert isinstance(blur, GaussianBlur) and blur.p == 0.5 and blur.sigma == (0.1, 2.0)
    x = _images(6)
    y = strong(x)
    manual = x
    for i, step in enumerate(strong.steps):
        manual = step.apply(manual, strong.last_params[str(i)])
    assert torch.equal(manual, y)


def test_dtype_is_kept_and_params_live_on_the_cpu() -> None:
    x = _images(7).double()
    strong = StrongPhotometric(seed=1, jitter_p=1.0, blur_p=1.0)
    y = strong(x)
    assert y.dtype == torch.float64 and y.device == x.device
    assert all(v.device.type == "cpu" for p in strong.last_params.values() for v in p.values())
    assert torch.equal(strong.apply(x, strong.last_params), y)
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


def test_seeded_rng_offsets_the_seed_by_the_process_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    import da_toolkit.perturb.base as base

    x = _images(8)
    rank0 = StrongPhotometric(seed=11)(x)
    monkeypatch.setattr(base, "process_rank", lambda: 1)
    rank1 = StrongPhotometric(seed=11)(x)
    monkeypatch.setattr(base, "process_rank", lambda: 0)
    assert torch.equal(rank1, StrongPhotometric(seed=12)(x))
    assert not torch.equal(rank0, rank1)
