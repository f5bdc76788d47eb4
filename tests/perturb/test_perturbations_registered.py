"""Every built-in perturbation is registered under its short name."""

from __future__ import annotations

import pytest

import da_toolkit.perturb as perturb
from da_toolkit.plugins import get_component


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("color_jitter", perturb.ColorJitter),
        ("grayscale", perturb.RandomGrayscale),
        ("gaussian_blur", perturb.GaussianBlur),
        ("photometric_sequence", perturb.PhotometricSequence),
        ("strong_photometric", perturb.StrongPhotometric),
        ("cutmix", perturb.CutMix),
    ],
)
def test_registered(name: str, cls: type) -> None:
    assert get_component("perturbations", name) is cls
