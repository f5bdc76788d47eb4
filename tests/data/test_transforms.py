"""Tests of the training/evaluation transforms and intrinsics bookkeeping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from da_toolkit.data.transforms import EvalTransform, TrainTransform, crop, hflip, resize_shorter_side, to_tensors


def _sample(h=6, w=10):
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, (h, w)).astype(np.float32)
    valid = rng.random((h, w)) > 0.3
    return {
        "image": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "depth": depth,
        "valid": valid,
        "depth_kind": "metric",
        "seg": rng.integers(0, 7, (h, w)).astype(np.int64),
        "intrinsics": np.array([[8.0, 0, 4.5], [0, 8.0, 2.5], [0, 0, 1]], np.float32),
        "meta": {"source": "t", "id": "x"},
    }


def _project(k, point):
    x, y, z = point
    return np.array([k[0, 0] * x / z + k[0, 2], k[1, 1] * y / z + k[1, 2]])


def test_to_tensors_types_and_range():
    s = _sample()
    t = to_tensors(s)
    assert t["image"].shape == (3, 6, 10) and t["image"].dtype == torch.float32
    assert t["image"].min() >= 0 and t["image"].max() <= 1
    np.testing.assert_allclose(t["image"].permute(1, 2, 0).numpy() * 255, s["image"], atol=1e-4)
    assert t["valid"].dtype == torch.bool and t["seg"].dtype == torch.int64
    assert t["meta"] == s["meta"] and t["meta"] is not s["meta"]


def test_resize_shorter_side_exact_integer_upscale():
    t = to_tensors(_sample(6, 10))
    r = resize_shorter_side(t, 12)  # exact x2 upscale
    assert r["image"].shape == (3, 12, 20) and r["depth"].shape == (12, 20)
    # nearest: every 2x2 block copies one source pixel, values never mixed
    np.testing.assert_array_equal(r["depth"][::2, ::2].numpy(), t["depth"].numpy())
    np.testing.assert_array_equal(r["valid"][1::2, 1::2].numpy(), t["valid"].numpy())
    np.testing.assert_array_equal(r["seg"][::2, ::2].numpy(), t["seg"].numpy())
    # intrinsics: a 3-D point projects to the same place in the scaled image
    p = (0.3, -0.2, 2.0)
    np.testing.assert_allclose(
        (_project(t["intrinsics"].numpy(), p) + 0.5) * 2 - 0.5, _project(r["intrinsics"].numpy(), p), rtol=1e-6
    )


def test_crop_and_flip_intrinsics_follow_the_pixels():
    t = to_tensors(_sample(6, 10))
    c = crop(t, 1, 3, 4, 5)
    np.testing.assert_array_equal(c["depth"].numpy(), t["depth"][1:5, 3:8].numpy())
    assert c["intrinsics"][0, 2] == pytest.approx(1.5) and c["intrinsics"][1, 2] == pytest.approx(1.5)
    f = hflip(t)
    np.testing.assert_array_equal(f["image"].numpy(), t["image"].numpy()[:, :, ::-1])
    # a point projecting to column u projects to column W-1-u in the mirrored image (x -> -x)
    u = _project(t["intrinsics"].numpy(), (0.4, 0.1, 2.0))[0]
    u_flip = _project(f["intrinsics"].numpy(), (-0.4, 0.1, 2.0))[0]
    assert u_flip == pytest.approx(10 - 1 - u)


def test_train_transform_crop_size_and_flip_rate():
    gen = torch.Generator().manual_seed(0)
    tr = TrainTransform(4, flip=True, generator=gen)
    s = _sample(6, 10)
    flips = 0
    full = resize_shorter_side(to_tensors(s), 4)
    for _ in range(200):
        out = tr(s)
        assert out["image"].shape == (3, 4, 4) and out["depth"].shape == (4, 4) and out["valid"].shape == (4, 4)
        # the crop is a window of the (possibly mirrored) resized maps
        hit = False
        for cand in (full, hflip(full)):
            for top in range(full["depth"].shape[0] - 3):
                for left in range(full["depth"].shape[1] - 3):
                    if torch.equal(cand["depth"][top : top + 4, left : left + 4], out["depth"]):
                        hit = True
                        flips += cand is not full
                        break
                if hit:
                    break
            if hit:
                break
        assert hit
    assert 60 < flips < 140  # p = 0.5 (binomial 200, 5 sigma)
    no_flip = TrainTransform(4, flip=False, generator=torch.Generator().manual_seed(0))
    assert all(no_flip(s)["image"].shape == (3, 4, 4) for _ in range(3))


def test_eval_transform_keeps_full_size():
    out = EvalTransform()(_sample(7, 9))
    assert out["image"].shape == (3, 7, 9) and out["depth"].shape == (7, 9)
