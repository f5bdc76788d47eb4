"""PairedFolder on the real RGB-D frames in ``../shared/data/rgbd`` (facts from their READMEs)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from da_toolkit.data.io import read_png_uint16
from da_toolkit.data.sources import PairedFolder

RGBD = Path(os.environ.get("DA_TOOLKIT_SHARED", Path(__file__).resolve().parents[3] / ".." / "shared")) / "data" / "rgbd"
pytestmark = pytest.mark.skipif(not RGBD.is_dir(), reason=f"shared RGB-D fixtures not present at {RGBD}")

# folder, depth scale, invalid values, intrinsics, pairs, (min, max) metres, rounding of the README
FIXTURES = [
    ("7scenes_redkitchen", 1000.0, (0, 65535), (585.0, 585.0, 320.0, 240.0), 30, (0.80, 3.98), 0.0051),
    ("icl_nuim_livingroom1_synthetic", 1000.0, (0,), (525.0, 525.0, 319.5, 239.5), 30, (0.71, 3.38), 0.0051),
    ("nyu_v2_demo", 1000.0, (0,), (518.8579, 519.46961, 325.58245, 253.73617), 3, (0.71, 8.27), 0.0051),
    ("kitti_demo", 256.0, (0,), (707.0493, 707.0493, 604.0814, 180.5066), 3, (5.1, 84.9), 0.051),
    ("tum_single", 5000.0, (0,), (525.0, 525.0, 319.5, 239.5), 1, (1.46, 9.33), 0.0051),
]


@pytest.mark.parametrize(("folder", "scale", "invalid", "k", "pairs", "range_m", "tol"), FIXTURES)
def test_real_frames(folder, scale, invalid, k, pairs, range_m, tol):
    src = PairedFolder(RGBD / folder, depth_scale=scale, invalid_values=invalid, intrinsics=k)
    assert len(src) == pairs
    lo, hi = np.inf, -np.inf
    for i in range(len(src)):
        s = src[i]
        h, w = s["image"].shape[:2]
        assert s["image"].dtype == np.uint8 and s["depth"].shape == (h, w) and s["valid"].shape == (h, w)
        raw = read_png_uint16(src.pairs[i].depth)
        expect = np.ones_like(s["valid"])
        for v in invalid:
            expect &= raw != v
        np.testing.assert_array_equal(s["valid"], expect)
        np.testing.assert_allclose(s["depth"][expect], raw[expect] / scale, rtol=1e-6)
        lo, hi = min(lo, s["depth"][s["valid"]].min()), max(hi, s["depth"][s["valid"]].max())
        assert s["intrinsics"][0, 0] == pytest.approx(k[0])
    # README ranges are rounded to the digits shown (tol = half a unit of the last digit)
    assert lo == pytest.approx(range_m[0], abs=tol)
    assert hi == pytest.approx(range_m[1], abs=tol)


def test_7scenes_65535_marker_is_invalid():
    src = PairedFolder(RGBD / "7scenes_redkitchen", invalid_values=(0, 65535))
    ids = [p.item_id for p in src.pairs]
    marked = 0
    for stem in ("frame-000850", "frame-000884"):
        s = src[ids.index(stem)]
        raw = read_png_uint16(src.pairs[ids.index(stem)].depth)
        marked += int((raw == 65535).sum())
        assert not s["valid"][raw == 65535].any()
    assert marked == 3249  # README: 3,249 pixels in all
    fractions = [src[i]["valid"].mean() for i in range(len(src))]
    assert 0.79 <= min(fractions) and max(fractions) <= 0.97
    assert np.mean(fractions) == pytest.approx(0.89, abs=0.01)


def test_tum_valid_fraction():
    s = PairedFolder(RGBD / "tum_single", depth_scale=5000.0)[0]
    assert s["valid"].mean() == pytest.approx(0.81, abs=0.01)
