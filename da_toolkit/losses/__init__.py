"""Losses (registered by the built-in plugin under the short names of :data:`BUILTIN_LOSSES`).

Depth losses take ``pred``/``target`` ``(B,H,W)`` and a bool ``mask`` ``(B,H,W)`` (True = valid),
compute per sample over the valid pixels, average over the samples with any valid pixel, and give
a zero that still backpropagates when no pixel is valid. The student's unlabeled loss takes
``(pred, target_a, target_b, mask, valid)`` (CutMix-aware): :class:`CutMixRegionLoss` turns any
depth loss into one. Masked reductions for writing losses: :mod:`da_toolkit.losses.masked`;
contract checks: :mod:`da_toolkit.losses.contract`.
"""

from da_toolkit.losses.affine_invariant import (
    AffineInvariantLoss,
    normalize_affine,
    trimmed_mean,
)
from da_toolkit.losses.combined import (
    CombinedLoss,
    LossOutput,
    WeightedLosses,
    weighted_sum,
)
from da_toolkit.losses.cutmix import CutMixAffineInvariantLoss, CutMixRegionLoss
from da_toolkit.losses.feature_alignment import FeatureAlignmentLoss
from da_toolkit.losses.gradient_matching import GradientMatchingLoss
from da_toolkit.losses.segmentation import SegmentationHead, SegmentationLoss
from da_toolkit.losses.silog import SiLogLoss
from da_toolkit.losses.targets import depth_to_normalized_disparity

BUILTIN_LOSSES: dict[str, type] = {
    "affine_invariant": AffineInvariantLoss,
    "gradient_matching": GradientMatchingLoss,
    "cutmix_affine_invariant": CutMixAffineInvariantLoss,
    "cutmix_region": CutMixRegionLoss,
    "feature_alignment": FeatureAlignmentLoss,
    "segmentation": SegmentationLoss,
    "segmentation_head": SegmentationHead,
    "silog": SiLogLoss,
    "weighted": WeightedLosses,
}

__all__ = [
    "BUILTIN_LOSSES",
    "AffineInvariantLoss",
    "CombinedLoss",
    "CutMixAffineInvariantLoss",
    "CutMixRegionLoss",
    "FeatureAlignmentLoss",
    "GradientMatchingLoss",
    "LossOutput",
    "SegmentationHead",
    "SegmentationLoss",
    "SiLogLoss",
    "WeightedLosses",
    "depth_to_normalized_disparity",
    "normalize_affine",
    "trimmed_mean",
    "weighted_sum",
]
