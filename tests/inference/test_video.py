from pathlib import Path

import numpy as np
import pytest

from da_toolkit.cli import main
from da_toolkit.inference.video import (
    TemporalSmoother,
    flicker,
    iter_video_frames,
    write_video,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _static_scene(h=24, w=32):
    yy, xx = np.mgrid[0:h, 0:w]
    return 1.0 + 0.5 * np.sin(xx / 5.0) + 0.3 * yy / h


def test_flicker_statistic_hand_values():
    a = np.ones((2, 2))
    assert flicker([a, a, a]) == 0.0
    # |2-1| per step, mean |d| = 1.5 -> 1 / 1.5
    assert flicker([a, 2 * a]) == pytest.approx(1 / 1.5)


def test_smoothing_reduces_flicker_of_affine_jitter(rng):
    scene = _static_scene()
    raw = []
    for _ in range(40):  # the same scene, each frame with its own scale/shift (relative-depth ambiguity)
        raw.append(rng.uniform(0.6, 1.4) * scene + rng.uniform(-0.3, 0.3) + rng.normal(0, 0.01, scene.shape))
    smoother = TemporalSmoother(momentum=0.9)
    smooth = [smoother(f) for f in raw]
    assert flicker(smooth) < 0.25 * flicker(raw)
    # spatial structure is kept: each smoothed frame is an affine map of its input
    for f, s in zip(raw, smooth):
        assert np.corrcoef(f.ravel(), s.ravel())[0, 1] > 0.9999


def test_smoother_momentum_zero_is_identity(rng):
    frames = [rng.random((5, 6)) for _ in range(3)]
    sm = TemporalSmoother(momentum=0.0)
    for f in frames:
        np.testing.assert_allclose(sm(f), f, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="momentum"):
        TemporalSmoother(1.0)


def test_video_roundtrip(tmp_path, rng):
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(5)]
    write_video(tmp_path / "v.mp4", frames, fps=10)
    fps, it = iter_video_frames(tmp_path / "v.mp4")
    got = list(it)
    assert fps == pytest.approx(10) and len(got) == 5 and got[0].shape == (32, 48, 3)
    with pytest.raises(ValueError, match="cannot read video"):
        (tmp_path / "bad.mp4").write_bytes(b"nope")
        iter_video_frames(tmp_path / "bad.mp4")


def test_infer_video_recipe(tmp_path, monkeypatch):
    yy, xx = np.mgrid[0:32, 0:48]
    frames = [np.stack([(xx * 5 + t * 8) % 256, yy * 7, np.full_like(xx, 90)], -1).astype(np.uint8) for t in range(6)]
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "walk.mp4", frames, fps=12)
    monkeypatch.chdir(tmp_path)
    args = ["predict", "--config", str(RECIPES / "infer_video.yaml"), "--data.path", "clips",
            "--model.model", "tiny", "--model.allow_random_weights", "true", "--data.input_size", "28", "--data.num_workers", "0",
            "--data.batch_size", "4", "--trainer.accelerator", "cpu"]
    assert main(args) == 0
    out = tmp_path / "predictions"
    npys = sorted((out / "walk").glob("*.npy"))
    assert [p.name for p in npys] == [f"{i:06d}.npy" for i in range(6)]
    assert np.load(npys[0]).shape == (32, 48)
    fps, it = iter_video_frames(out / "walk_depth.mp4")
    vis = list(it)
    assert len(vis) == 6 and vis[0].shape == (32, 96, 3)  # side by side with the input
    assert fps == pytest.approx(12)
    # the left half is the input frame (lossy codec: close, not equal)
    assert np.abs(vis[2][:, :48].astype(int) - frames[2].astype(int)).mean() < 12
    stamp = (out / "walk_depth.mp4").stat().st_mtime_ns
    assert main(args) == 0  # finished video is skipped
    assert (out / "walk_depth.mp4").stat().st_mtime_ns == stamp
