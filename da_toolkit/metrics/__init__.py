"""Evaluation metrics (registered by the built-in plugin under :data:`BUILTIN_METRICS`)."""

from da_toolkit.metrics.alignment import (
    ALIGNMENTS,
    align_lstsq_depth,
    align_lstsq_disparity,
    align_lstsq_disparity_all,
    align_median,
    align_none,
    lstsq_scale_shift,
)
from da_toolkit.metrics.crops import EVAL_CROPS, eigen_crop, garg_crop, nyu_crop
from da_toolkit.metrics.depth_metrics import (
    METRIC_NAMES,
    ConstantPredictionWarning,
    DepthMetrics,
    per_image_metrics,
)

BUILTIN_METRICS: dict[str, type] = {"depth_metrics": DepthMetrics}

__all__ = [
    "ALIGNMENTS",
    "BUILTIN_METRICS",
    "EVAL_CROPS",
    "METRIC_NAMES",
    "ConstantPredictionWarning",
    "DepthMetrics",
    "align_lstsq_depth",
    "align_lstsq_disparity",
    "align_lstsq_disparity_all",
    "align_median",
    "align_none",
    "eigen_crop",
    "garg_crop",
    "lstsq_scale_shift",
    "nyu_crop",
    "per_image_metrics",
]
