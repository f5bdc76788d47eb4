"""DepthMetrics defaults against independent numpy implementations of the reference rules.

- Depth Anything V2 evaluation (``metric_depth/train.py`` + ``util/metric.py``): bilinear resize
  of the prediction to the ground truth with ``align_corners=True``, per-image metrics averaged
  over images, ``silog = sqrt(mean d^2 - 0.5 (mean d)^2)``.
- Marigold's ``least_square_disparity`` alignment (``script/depth/eval.py``): the fit leaves out
  pixels whose prediction is <= 0, the aligned disparity is floored at 1e-3, inverted and the
  depth clipped to the dataset range; metrics over every valid pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.metrics import DepthMetrics


def _np_resize_align_corners(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of ``(h, w)`` with corner pixels aligned: source = o * (in - 1) / (out - 1)."""
    h, w = x.shape
    ys = np.arange(out_h) * (h - 1) / (out_h - 1)
    xs = np.arange(out_w) * (w - 1) / (out_w - 1)
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None]
    wx = (xs - x0)[None, :]
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bottom = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _np_v2_eval_depth(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """V2's ``eval_depth`` on the valid pixels (1-D arrays), keyed by our metric names."""
    thresh = np.maximum(target / pred, pred / target)
    diff = pred - target
    diff_log = np.log(pred) - np.log(target)
    return {
        "delta1": np.mean(thresh < 1.25),
        "delta2": np.mean(thresh < 1.25**2),
        "delta3": np.mean(thresh < 1.25**3),
        "abs_rel": np.mean(np.abs(diff) / target),
        "sq_rel": np.mean(diff**2 / target),
        "rmse": np.sqrt(np.mean(diff**2)),
        "rmse_log": np.sqrt(np.mean(diff_log**2)),
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(target))),
        "silog": np.sqrt(np.mean(diff_log**2) - 0.5 * np.mean(diff_log) ** 2),
    }


def test_default_follows_the_v2_evaluation_rule() -> None:
    g = torch.Generator().manual_seed(0)
    min_depth, max_depth = 0.001, 20.0
    gt = torch.rand(3, 24, 30, generator=g, dtype=torch.float64) * 18 + 1.5  # strictly inside the range
    valid = torch.rand(3, 24, 30, generator=g) > 0.2
    pred = torch.rand(3, 11, 14, generator=g, dtype=torch.float64) * 15 + 2  # network resolution, metres
    metric = DepthMetrics(alignment="none", min_depth=min_depth, max_depth=max_depth)
    metric.update(pred, gt, valid)
    got = metric.compute()
    per_image = []
    for i in range(3):
        up = _np_resize_align_corners(pred[i].numpy(), 24, 30)
        m = valid[i].numpy() & (gt[i].numpy() >= min_depth) & (gt[i].numpy() <= max_depth)
        per_image.append(_np_v2_eval_depth(up[m], gt[i].numpy()[m]))
    for k in per_image[0]:
        assert got[k].item() == pytest.approx(np.mean([p[k] for p in per_image]), rel=1e-5), k
    # the old half-pixel rule is an option, and it gives a different number on the same prediction
    old = DepthMetrics(alignment="none", min_depth=min_depth, max_depth=max_depth, resize_align_corners=False)
    old.update(pred, gt, valid)
    assert old.compute()["abs_rel"].item() != pytest.approx(got["abs_rel"].item(), rel=1e-4)


def _np_marigold_disparity(
    pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, min_depth: float, max_depth: float, drop_nonpositive: bool
) -> np.ndarray:
    """Marigold ``least_square_disparity`` for one image; returns depth (metres)."""
    gt_disp = np.zeros_like(gt)
    gt_disp[gt > 0] = 1.0 / gt[gt > 0]
    fit = valid & (gt > 0)
    if drop_nonpositive:
        fit = fit & (pred > 0)
    a = np.stack([pred[fit], np.ones(fit.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, gt_disp[fit], rcond=None)
    disp = np.clip(pred * s + t, 1e-3, None)
    depth = 1.0 / disp
    return np.clip(np.clip(depth, min_depth, max_depth), 1e-6, None)


def _np_marigold_metrics(depth: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    p, y = depth[valid], gt[valid]
    d = np.log(p) - np.log(y)
    return {
        "abs_rel": np.mean(np.abs(p - y) / y),
        "sq_rel": np.mean((p - y) ** 2 / y),
        "rmse": np.sqrt(np.mean((p - y) ** 2)),
        "rmse_log": np.sqrt(np.mean(d**2)),
        "log10": np.mean(np.abs(np.log10(p) - np.log10(y))),
        "delta1": np.mean(np.maximum(p / y, y / p) < 1.25),
        "silog_rmse": 100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2),  # Marigold's silog_rmse
    }


@pytest.mark.parametrize("mode", ["lstsq-disparity", "lstsq-disparity-all"])
def test_disparity_alignment_matches_marigold_with_relu_zeros(mode: str) -> None:
    g = torch.Generator().manual_seed(1)
    min_depth, max_depth = 1e-3, 10.0
    gt = torch.rand(2, 20, 25, generator=g, dtype=torch.float64) * 8 + 1
    valid = torch.rand(2, 20, 25, generator=g) > 0.1
    pred = 3.0 / gt + 0.2 + 0.05 * torch.randn(2, 20, 25, generator=g, dtype=torch.float64)
    zeros = torch.rand(2, 20, 25, generator=g) < 0.02  # ~2% ReLU zeros inside the valid mask
    pred = torch.where(zeros, torch.zeros_like(pred), pred)
    assert (zeros & valid).sum() > 10
    metric = DepthMetrics(alignment=mode, min_depth=min_depth, max_depth=max_depth)
    metric.update(pred, gt, valid)
    got = metric.compute()
    per_image = []
    for i in range(2):
        p, y, v = pred[i].numpy(), gt[i].numpy(), valid[i].numpy()
        depth = _np_marigold_disparity(p, y, v, min_depth, max_depth, drop_nonpositive=(mode == "lstsq-disparity"))
        per_image.append(_np_marigold_metrics(depth, y, v))
    for k in per_image[0]:
        assert got[k].item() == pytest.approx(np.mean([p[k] for p in per_image]), rel=1e-6), k


def test_the_two_disparity_fits_differ_when_predictions_are_zero() -> None:
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(1, 30, 30, generator=g, dtype=torch.float64) * 8 + 1
    pred = 3.0 / gt + 0.2
    pred[0, :3] = 0.0  # 10% zeros: dropped from the fit by default, kept by "-all"
    marigold, ours = (
        DepthMetrics("lstsq-disparity", max_depth=10.0),
        DepthMetrics("lstsq-disparity-all", max_depth=10.0),
    )
    marigold.update(pred, gt)
    ours.update(pred, gt)
    a, b = marigold.compute()["abs_rel"].item(), ours.compute()["abs_rel"].item()
    # the exact fit on the positive pixels leaves only the zero rows wrong (clamped to 10 m)
    zero_rows = np.abs(10.0 - gt[0, :3].numpy()) / gt[0, :3].numpy()
    assert a == pytest.approx(zero_rows.sum() / 900, rel=1e-6)  # DepthMetrics computes in float32
    assert b > 1.5 * a


def test_lstsq_disparity_all_matches_the_midas_validation_rule() -> None:
    """MiDaS' KITTI validation gist: fit on every valid pixel (non-positive predictions kept),
    floor the aligned disparity at 1/depth_cap, invert; metrics per image over the valid pixels."""
    g = torch.Generator().manual_seed(3)
    cap = 80.0
    gt = torch.rand(2, 16, 20, generator=g, dtype=torch.float64) * 70 + 2
    valid = torch.rand(2, 16, 20, generator=g) > 0.5  # sparse, like KITTI
    pred = 5.0 / gt + 0.01 * torch.randn(2, 16, 20, generator=g, dtype=torch.float64)
    pred[:, :2] = 0.0
    metric = DepthMetrics("lstsq-disparity-all", min_depth=1e-3, max_depth=cap)
    metric.update(pred, gt, valid)
    got = metric.compute()
    abs_rel, rmse, bad = [], [], []
    for i in range(2):
        m = valid[i].numpy()
        p, y = pred[i].numpy()[m], gt[i].numpy()[m]
        (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), 1.0 / y, rcond=None)
        depth = 1.0 / np.maximum(s * p + t, 1.0 / cap)
        abs_rel.append(np.mean(np.abs(depth - y) / y))
        rmse.append(np.sqrt(np.mean((depth - y) ** 2)))
        bad.append(np.mean(np.maximum(depth / y, y / depth) > 1.25))
    assert got["abs_rel"].item() == pytest.approx(np.mean(abs_rel), rel=1e-6)
    assert got["rmse"].item() == pytest.approx(np.mean(rmse), rel=1e-6)
    assert got["delta1"].item() == pytest.approx(1.0 - np.mean(bad), rel=1e-6)
