"""Perturbations build from YAML (jsonargparse), as recipes use them."""

from __future__ import annotations

import pytest
from jsonargparse import ArgumentParser

from da_toolkit.perturb import ColorJitter, CutMix, GaussianBlur, PhotometricSequence, StrongPhotometric


def test_sequence_and_cutmix_from_yaml() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--strong", type=PhotometricSequence)
    parser.add_argument("--cutmix", type=CutMix)
    cfg = parser.parse_string(
        """
strong:
  class_path: da_toolkit.perturb.PhotometricSequence
  init_args:
    steps:
      - {class_path: da_toolkit.perturb.ColorJitter, init_args: {p: 1.0, hue: 0.1}}
      - {class_path: da_toolkit.perturb.GaussianBlur, init_args: {sigma: [0.2, 1.0]}}
    seed: 3
cutmix: {class_path: da_toolkit.perturb.CutMix, init_args: {p: 0.5, area: [0.05, 0.3]}}
"""
    )
    built = parser.instantiate(cfg)
    jitter, blur = built.strong.steps
    assert isinstance(jitter, ColorJitter) and jitter.p == 1.0 and jitter.hue == 0.1
    assert isinstance(blur, GaussianBlur) and blur.sigma == (0.2, 1.0)
    assert isinstance(built.cutmix, CutMix) and built.cutmix.area == (0.05, 0.3)


def test_strong_photometric_from_yaml_and_bad_values_are_rejected() -> None:
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--strong", type=StrongPhotometric)
    cfg = parser.parse_string("strong: {class_path: da_toolkit.perturb.StrongPhotometric, init_args: {blur_p: 0.3}}")
    assert parser.instantiate(cfg).strong.steps[2].p == 0.3
    with pytest.raises(Exception, match="blur_p"):
        parser.parse_string("strong: {class_path: da_toolkit.perturb.StrongPhotometric, init_args: {blur_p: high}}")
