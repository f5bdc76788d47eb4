"""DepthMetrics: hand-worked values, numpy reference, accumulation, crops, caps, DDP-style merge."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from da_toolkit.metrics import (
    METRIC_NAMES,
    ConstantPredictionWarning,
    DepthMetrics,
    eigen_crop,
    garg_crop,
    nyu_crop,
)


def _np_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    d = np.log(pred) - np.log(gt)
    ratio = np.maximum(pred / gt, gt / pred)
    out = {
        "abs_rel": np.mean(np.abs(pred - gt) / gt),
        "sq_rel": np.mean((pred - gt) ** 2 / gt),
        "rmse": np.sqrt(np.mean((pred - gt) ** 2)),
        "rmse_log": np.sqrt(np.mean(d**2)),
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(gt))),
        "silog": np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2),
        "silog_rmse": 100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2),
    }
    for k in (1, 2, 3):
        out[f"delta{k}"] = np.mean(ratio < 1.25**k)
    return out


def test_hand_worked_values() -> None:
    metric = DepthMetrics(alignment="none")
    metric.update(torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[2.0, 2.0]]]))
    got = {k: v.item() for k, v in metric.compute().items()}
    ln2 = math.log(2)
    expected = {
        "abs_rel": 0.25,  # (1/2 + 0) / 2
        "sq_rel": 0.25,  # (1/2 + 0) / 2
        "rmse": math.sqrt(0.5),
        "rmse_log": ln2 / math.sqrt(2),
        "log10": math.log10(2) / 2,
        # d = (-ln2, 0): mean d^2 = ln2^2/2, (mean d)^2 = ln2^2/4
        "silog": math.sqrt(ln2**2 / 2 - 0.5 * ln2**2 / 4),
        "silog_rmse": 100 * math.sqrt(ln2**2 / 2 - ln2**2 / 4),
        "delta1": 0.5,
        "delta2": 0.5,
        "delta3": 0.5,
    }
    assert set(got) == set(METRIC_NAMES)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-6), k


def test_matches_numpy_reference_averaged_over_images() -> None:
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 10, 12, generator=g) * 20 + 0.5
    pred = gt * (1 + 0.3 * (torch.rand(3, 10, 12, generator=g) - 0.5))
    mask = torch.rand(3, 10, 12, generator=g) > 0.4  # different valid counts per image
    metric = DepthMetrics(alignment="none", max_depth=15.0)
    metric.update(pred, gt, mask)
    got = metric.compute()
    per_image = []
    for i in range(3):
        m = mask[i].numpy() & (gt[i].numpy() <= 15.0)
        per_image.append(_np_metrics(np.clip(pred[i].double().numpy()[m], 1e-3, 15.0), gt[i].double().numpy()[m]))
    for k in METRIC_NAMES:
        assert got[k].item() == pytest.approx(np.mean([p[k] for p in per_image]), rel=1e-5), k


def test_lstsq_disparity_protocol_matches_numpy() -> None:
    g = torch.Generator().manual_seed(1)
    gt = torch.rand(2, 8, 8, generator=g) * 9 + 1
    disparity = 2.0 / gt + 0.1 * torch.rand(2, 8, 8, generator=g)
    metric = DepthMetrics(alignment="lstsq-disparity", max_depth=80.0)
    metric.update(disparity, gt)
    per_image = []
    for i in range(2):
        p = disparity[i].double().numpy().ravel()
        y = 1.0 / gt[i].double().numpy().ravel()
        (s, t), *_ = np.linalg.lstsq(np.stack([p, np.ones_like(p)], 1), y, rcond=None)
        depth = np.clip(1.0 / np.maximum(s * p + t, 1e-3), 1e-3, 80.0)
        per_image.append(_np_metrics(depth, gt[i].double().numpy().ravel()))
    got = metric.compute()
    for k in METRIC_NAMES:
        assert got[k].item() == pytest.approx(np.mean([p[k] for p in per_image]), rel=1e-4, abs=1e-9), k


def test_several_updates_equal_one_update_over_the_concatenation() -> None:
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(5, 6, 7, generator=g) * 10 + 0.5
    pred = torch.rand(5, 6, 7, generator=g)
    mask = torch.rand(5, 6, 7, generator=g) > 0.3
    whole, parts = DepthMetrics(), DepthMetrics()
    whole.update(pred, gt, mask)
    parts.update(pred[:2], gt[:2], mask[:2])
    parts.update(pred[2:3], gt[2:3], mask[2:3])
    parts.update(pred[3:], gt[3:], mask[3:])
    a, b = whole.compute(), parts.compute()
    for k in METRIC_NAMES:
        torch.testing.assert_close(a[k], b[k])


def test_states_sum_across_processes() -> None:
    """Two metric instances (as two DDP ranks) merged with their reduce functions equal one."""
    g = torch.Generator().manual_seed(3)
    gt = torch.rand(4, 6, 6, generator=g) * 10 + 0.5
    pred = torch.rand(4, 6, 6, generator=g)
    rank0, rank1, single = DepthMetrics(), DepthMetrics(), DepthMetrics()
    rank0.update(pred[:1], gt[:1])
    rank1.update(pred[1:], gt[1:])
    single.update(pred, gt)
    assert set(rank0._reductions.values()) == {dim_zero_sum}  # every state syncs by summing
    rank0.merge_state(rank1)
    for k in METRIC_NAMES:
        torch.testing.assert_close(rank0.compute()[k], single.compute()[k])


def test_images_without_valid_pixels_are_skipped_and_empty_gives_nan() -> None:
    metric = DepthMetrics(alignment="none")
    gt = torch.full((2, 3, 3), 2.0)
    mask = torch.ones(2, 3, 3, dtype=torch.bool)
    mask[1] = False
    metric.update(torch.full((2, 3, 3), 1.0), gt, mask)
    assert metric.compute()["abs_rel"].item() == pytest.approx(0.5)
    assert metric.skipped.item() == 1 and metric.count.item() == 1
    empty = DepthMetrics()
    empty.update(torch.rand(1, 3, 3), torch.zeros(1, 3, 3))
    assert math.isnan(empty.compute()["abs_rel"].item())


def test_depth_caps_and_prediction_resize() -> None:
    gt = torch.tensor([[[1.0, 2.0], [100.0, 0.0]]])
    pred = torch.tensor([[[2.0, 2.0], [1.0, 1.0]]])
    metric = DepthMetrics(alignment="none", max_depth=80.0)
    metric.update(pred, gt)  # only the first row counts: abs_rel (1 + 0) / 2
    assert metric.compute()["abs_rel"].item() == pytest.approx(0.5)
    metric = DepthMetrics(alignment="none")
    metric.update(torch.full((1, 1, 4, 4), 3.0), torch.full((1, 8, 8), 2.0))
    assert metric.compute()["abs_rel"].item() == pytest.approx(0.5)


def test_eval_crops() -> None:
    cpu = torch.device("cpu")
    nyu = nyu_crop(480, 640, cpu)
    expected = torch.zeros(480, 640, dtype=torch.bool)
    expected[45:471, 41:601] = True
    assert torch.equal(nyu, expected)
    garg = garg_crop(375, 1242, cpu)
    rows = garg.any(dim=1).nonzero().flatten()
    cols = garg.any(dim=0).nonzero().flatten()
    # int(0.40810811 * 375) = 153, int(0.99189189 * 375) = 371, int(0.03594771 * 1242) = 44,
    # int(0.96405229 * 1242) = 1197
    assert (rows.min().item(), rows.max().item() + 1) == (153, 371)
    assert (cols.min().item(), cols.max().item() + 1) == (44, 1197)
    eigen = eigen_crop(375, 1242, cpu)
    rows = eigen.any(dim=1).nonzero().flatten()
    assert (rows.min().item(), rows.max().item() + 1) == (124, 342)  # int(.3324324*375), int(.91351351*375)
    assert int(garg.sum()) == (371 - 153) * (1197 - 44)
    # the crop option restricts the evaluated pixels
    gt = torch.full((1, 480, 640), 2.0)
    pred = torch.full((1, 480, 640), 2.0)
    pred[0, :45] = 1.0  # outside the NYU crop
    metric = DepthMetrics(alignment="none", crop="nyu")
    metric.update(pred, gt)
    assert metric.compute()["abs_rel"].item() == pytest.approx(0.0)


def test_bad_options_and_inputs() -> None:
    with pytest.raises(ValueError, match="alignment"):
        DepthMetrics(alignment="scale")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crop"):
        DepthMetrics(crop="kitti")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_depth"):
        DepthMetrics(min_depth=10.0, max_depth=1.0)
    with pytest.raises(ValueError, match="mask"):
        DepthMetrics().update(torch.rand(1, 3, 3), torch.rand(1, 3, 3), torch.ones(1, 3, 3))


def test_options_from_yaml_are_validated() -> None:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--metric", type=DepthMetrics)
    cfg = parser.parse_string(
        "metric: {class_path: da_toolkit.metrics.DepthMetrics, init_args: {alignment: median, crop: garg}}"
    )
    metric = parser.instantiate(cfg).metric
    assert metric.alignment == "median" and metric.crop == "garg"
    with pytest.raises(Exception, match="alignment"):
        parser.parse_string("metric: {class_path: da_toolkit.metrics.DepthMetrics, init_args: {alignment: foo}}")


def test_constant_predictions_are_counted_and_warned_about() -> None:
    gt = torch.rand(3, 4, 4) * 5 + 1
    dead = DepthMetrics()
    dead.update(torch.zeros(3, 4, 4), gt)  # a dead ReLU head
    with pytest.warns(ConstantPredictionWarning, match="constant on every one of the 3"):
        dead.compute()
    assert dead.constant.item() == 3
    live = DepthMetrics()
    pred = torch.rand(3, 4, 4) + 0.1
    pred[1] = 0.5  # one constant map among live ones: counted, no warning
    live.update(pred, gt)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConstantPredictionWarning)
        live.compute()
    assert live.constant.item() == 1
