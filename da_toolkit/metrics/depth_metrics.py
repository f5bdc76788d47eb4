"""DepthMetrics: the standard depth metrics, per image then averaged over images (SPEC 4)."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from da_toolkit.metrics.alignment import ALIGNMENTS
from da_toolkit.metrics.crops import EVAL_CROPS

#: Keys of :meth:`DepthMetrics.compute`, in order.
METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "silog_rmse",
    "delta1",
    "delta2",
    "delta3",
)


class ConstantPredictionWarning(UserWarning):
    """Every prediction :class:`DepthMetrics` evaluated was constant: the model is dead."""


Alignment = Literal["none", "median", "lstsq-disparity", "lstsq-disparity-all", "lstsq-depth"]
Crop = Literal["garg", "eigen", "nyu"]


def per_image_metrics(pred: Tensor, target: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Each metric of :data:`METRIC_NAMES` per image ``(B,)`` over ``mask``, in float64.

    ``pred`` and ``target`` are positive depths ``(B,H,W)`` in metres. Definitions (means over the
    valid pixels of one image, ``d = log pred - log target``): abs_rel ``|p-g|/g``; sq_rel
    ``(p-g)^2/g``; rmse ``sqrt(mean (p-g)^2)``; rmse_log ``sqrt(mean d^2)``; log10
    ``mean |log10 p - log10 g|``; silog ``sqrt(mean d^2 - 0.5 * (mean d)^2)`` (Depth Anything V2
    ``metric_depth/util/metric.py``, unitless); silog_rmse ``100 * sqrt(mean d^2 - (mean d)^2)``
    (Marigold's ``silog_rmse``, the KITTI-benchmark scale); delta_k the fraction with
    ``max(p/g, g/p) < 1.25**k``. Images without valid pixels give 0.
    """
    p = pred.double()
    g = torch.where(mask, target.double(), torch.ones_like(p))
    p = torch.where(mask, p, torch.ones_like(p))
    m = mask.double()
    n = m.flatten(1).sum(dim=1).clamp_min(1)

    def mean(x: Tensor) -> Tensor:
        return (x * m).flatten(1).sum(dim=1) / n

    diff = p - g
    d = torch.log(p) - torch.log(g)
    ratio = torch.maximum(p / g, g / p)
    mean_d = mean(d)
    out = {
        "abs_rel": mean(diff.abs() / g),
        "sq_rel": mean(diff * diff / g),
        "rmse": torch.sqrt(mean(diff * diff)),
        "rmse_log": torch.sqrt(mean(d * d)),
        "log10": mean((torch.log10(p) - torch.log10(g)).abs()),
        "silog": torch.sqrt((mean(d * d) - 0.5 * mean_d * mean_d).clamp_min(0.0)),
        "silog_rmse": 100.0 * torch.sqrt((mean(d * d) - mean_d * mean_d).clamp_min(0.0)),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = mean((ratio < 1.25**k).double())
    return out


class DepthMetrics(Metric):
    """Depth metrics (AbsRel, SqRel, RMSE, RMSE-log, log10, SILog (two scales), delta1-3), per
    image, averaged over images.

    ``update(pred, target, mask=None)``: ``pred`` ``(B,H,W)`` or ``(B,1,H,W)`` prediction (metres
    for ``"none"``, depth of unknown scale for ``"median"``, relative disparity for
    ``"lstsq-disparity"``/``"lstsq-disparity-all"``, affine-invariant depth for ``"lstsq-depth"``),
    resized bilinearly to the target size if it differs (``align_corners=resize_align_corners``;
    ``True`` = Depth Anything V2's evaluation rule); ``target`` ``(B,H,W)`` depth in
    metres; ``mask`` optional bool ``(B,H,W)``. A pixel is evaluated when it is in ``mask``, in the
    ``crop``, finite and ``min_depth < target <= max_depth``. The alignment is fitted per image on
    those pixels (``"lstsq-disparity"``, Marigold's rule: only on the pixels whose prediction is
    positive; ``"lstsq-disparity-all"``: on all of them); the aligned depth is clamped to
    ``[min_depth, max_depth]`` (disparity modes: the aligned disparity is floored at 1e-3 before
    inversion). Images without evaluated pixels are skipped and counted in ``skipped``; images
    whose prediction is constant over their evaluated pixels are counted in ``constant``, and
    ``compute()`` warns (:class:`ConstantPredictionWarning`) when every evaluated image (at least
    two) was.

    ``compute()`` -> dict of :data:`METRIC_NAMES` (float64 scalars, NaN when no image was
    evaluated). States are sums (``dist_reduce_fx="sum"``), so DDP syncing is exact.

    Args:
        alignment: ``"none"``, ``"median"``, ``"lstsq-disparity"``, ``"lstsq-disparity-all"`` or
            ``"lstsq-depth"``.
        min_depth: smallest evaluated depth, metres.
        max_depth: largest evaluated depth (cap), metres.
        crop: evaluation crop: ``"garg"``/``"eigen"`` (KITTI), ``"nyu"`` (NYUv2), or ``None``.
        resize_align_corners: ``align_corners`` of the bilinear resize of predictions to the
            ground-truth size (``True``: V2 ``metric_depth/train.py``; ``False``: the old rule).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self,
        alignment: Alignment = "lstsq-disparity",
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
        crop: Crop | None = None,
        resize_align_corners: bool = True,
    ) -> None:
        super().__init__()
        if alignment not in ALIGNMENTS:
            raise ValueError(f"DepthMetrics: alignment must be one of {sorted(ALIGNMENTS)}, got {alignment!r}")
        if crop is not None and crop not in EVAL_CROPS:
            raise ValueError(f"DepthMetrics: crop must be one of {sorted(EVAL_CROPS)} or None, got {crop!r}")
        if not 0.0 < min_depth < max_depth:
            raise ValueError(
                f"DepthMetrics: need 0 < min_depth < max_depth, got min_depth={min_depth}, max_depth={max_depth}"
            )
        self.alignment = alignment
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.crop = crop
        self.resize_align_corners = bool(resize_align_corners)
        self._align = ALIGNMENTS[alignment]
        self._crop = EVAL_CROPS[crop] if crop is not None else None
        for name in METRIC_NAMES:
            self.add_state(f"sum_{name}", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("skipped", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("constant", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def evaluated_mask(self, target: Tensor, mask: Tensor | None) -> Tensor:
        """Bool ``(B,H,W)``: the pixels that count (mask, crop, finite, depth caps)."""
        valid = torch.isfinite(target) & (target > self.min_depth) & (target <= self.max_depth)
        if mask is not None:
            valid = valid & mask
        if self._crop is not None:
            valid = valid & self._crop(target.shape[-2], target.shape[-1], target.device)[None]
        return valid

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:  # type: ignore[override]
        """Accumulate the per-image metrics of a batch (see the class docstring)."""
        if pred.dim() == 4 and pred.shape[1] == 1:
            pred = pred[:, 0]
        if pred.dim() != 3 or target.dim() != 3 or pred.shape[0] != target.shape[0]:
            raise ValueError(
                "DepthMetrics.update: pred must be (B,H,W) or (B,1,H,W) and target (B,H,W) with the same B, "
                f"got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
            )
        if mask is not None and (mask.shape != target.shape or mask.dtype != torch.bool):
            raise ValueError(
                f"DepthMetrics.update: mask must be bool of the target shape {tuple(target.shape)}, "
                f"got {tuple(mask.shape)} {mask.dtype}"
            )
        pred = pred.detach().float()
        target = target.detach().float()
        if pred.shape[-2:] != target.shape[-2:]:
            pred = F.interpolate(
                pred[:, None], size=target.shape[-2:], mode="bilinear", align_corners=self.resize_align_corners
            )[:, 0]
        valid = self.evaluated_mask(target, mask)
        depth = self._align(pred, target, valid, self.min_depth, self.max_depth)
        has = valid.flatten(1).any(dim=1)
        values = per_image_metrics(depth, target, valid)
        for name in METRIC_NAMES:
            current = getattr(self, f"sum_{name}")
            kept = torch.where(has, values[name], torch.zeros_like(values[name]))
            setattr(self, f"sum_{name}", current + kept.sum())
        self.count = self.count + has.sum()
        self.skipped = self.skipped + (~has).sum()
        inf = torch.full_like(pred, float("inf"))
        lowest = torch.where(valid, pred, inf).flatten(1).amin(dim=1)
        highest = torch.where(valid, pred, -inf).flatten(1).amax(dim=1)
        self.constant = self.constant + (has & (highest == lowest)).sum()

    def compute(self) -> dict[str, Tensor]:
        """Mean of each metric over the evaluated images (NaN if none)."""
        count = self.count
        if bool(count >= 2) and bool(self.constant == count):
            warnings.warn(
                f"DepthMetrics: the prediction was constant on every one of the {int(count)} evaluated images: "
                "the model is dead (e.g. a ReLU head that outputs 0), these metrics describe a constant map",
                ConstantPredictionWarning,
                stacklevel=2,
            )
        nan = torch.full_like(count, float("nan"))
        return {
            name: torch.where(count > 0, getattr(self, f"sum_{name}") / count.clamp_min(1), nan)
            for name in METRIC_NAMES
        }
