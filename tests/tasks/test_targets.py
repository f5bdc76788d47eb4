import pytest
import torch

from da_toolkit.tasks.targets import disparity_targets, metric_targets


def test_metric_samples_become_normalised_disparity_others_kept() -> None:
    depth = torch.tensor([[[1.0, 2.0], [4.0, float("nan")]], [[0.3, 0.6], [0.9, 0.1]]])
    valid = torch.ones(2, 2, 2, dtype=torch.bool)
    disp, ok = disparity_targets(depth, valid, ["metric", "relative"])
    # metric: 1/d normalised by its max (1/1): [1, .5, .25, invalid]
    assert disp[0].flatten()[:3].tolist() == pytest.approx([1.0, 0.5, 0.25])
    assert ok[0].flatten().tolist() == [True, True, True, False]
    assert torch.equal(disp[1], depth[1])
    assert bool(ok[1].all())


def test_unknown_kind_and_metric_only_checks() -> None:
    d = torch.ones(1, 2, 2)
    v = torch.ones(1, 2, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="unknown kind"):
        disparity_targets(d, v, ["inverse"])
    with pytest.raises(ValueError, match="metric"):
        metric_targets(d, v, ["relative"])
    t, ok = metric_targets(torch.tensor([[[0.0, 2.0]]]), torch.ones(1, 1, 2, dtype=torch.bool), ["metric"])
    assert ok.tolist() == [[[False, True]]]


def test_sky_label_makes_sky_valid_disparity_zero() -> None:
    from da_toolkit.tasks import TeacherTask
    from tests.tasks.conftest import make_labeled, tiny_model

    labeled = make_labeled(2, h=28, w=42)
    labeled["valid"][:, :5] = False  # top rows: sky, marked invalid by the source
    labeled["seg"] = torch.full((2, 28, 42), 3, dtype=torch.long)
    labeled["seg"][:, :5] = 0
    plain = TeacherTask(model=tiny_model(), log_images_every_n_steps=0)
    target, valid = plain.labeled_targets(labeled)
    assert not bool(valid[:, :5].any())  # default: sky stays invalid
    with_sky = TeacherTask(model=tiny_model(), sky_label=0, log_images_every_n_steps=0)
    target_s, valid_s = with_sky.labeled_targets(labeled)
    assert bool(valid_s[:, :5].all()) and float(target_s[:, :5].abs().max()) == 0.0
    # the rest is unchanged: 1/depth divided by its per-image maximum, computed independently
    inv = 1.0 / labeled["depth"][:, 5:]
    expected = inv / inv.flatten(1).max(dim=1).values[:, None, None]
    torch.testing.assert_close(target_s[:, 5:], expected)
    assert torch.equal(valid_s[:, 5:], valid[:, 5:])
