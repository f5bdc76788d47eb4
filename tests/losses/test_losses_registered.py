"""Every built-in loss is registered under its short name."""

from __future__ import annotations

import pytest

import da_toolkit.losses as losses
from da_toolkit.plugins import get_component


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("affine_invariant", losses.AffineInvariantLoss),
        ("gradient_matching", losses.GradientMatchingLoss),
        ("cutmix_affine_invariant", losses.CutMixAffineInvariantLoss),
        ("feature_alignment", losses.FeatureAlignmentLoss),
        ("segmentation", losses.SegmentationLoss),
        ("segmentation_head", losses.SegmentationHead),
        ("silog", losses.SiLogLoss),
        ("weighted", losses.WeightedLosses),
    ],
)
def test_registered(name: str, cls: type) -> None:
    assert get_component("losses", name) is cls
