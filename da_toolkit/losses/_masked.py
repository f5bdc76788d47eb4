"""Old import path of :mod:`da_toolkit.losses.masked` (kept so existing imports work)."""

from da_toolkit.losses.masked import (
    check_depth_inputs,
    masked_mean,
    masked_median,
    mean_over_samples,
    upcast,
)

__all__ = ["check_depth_inputs", "masked_mean", "masked_median", "mean_over_samples", "upcast"]
