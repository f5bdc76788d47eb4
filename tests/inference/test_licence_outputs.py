"""The weights' licence is written into prediction metadata (issue 19.9), read back with
independent readers: PIL for PNG text chunks, a plain parse of the PLY header, ffmpeg for the
video tag (onnx for ``metadata_props``: in test_export.py)."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from da_toolkit.cli import main
from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.writers import ColormapWriter, PlyWriter, Png16Writer
from da_toolkit.models import build_model
from da_toolkit.models.licence import LICENCE_LOGGER, reset_notices
from da_toolkit.models.weights import save_weights

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
OPTS = ["--data.input_size", "28", "--data.num_workers", "0", "--trainer.accelerator", "cpu"]
NC = {"licence": "CC-BY-NC-4.0", "origin": "depth-anything-v2-vitb"}


@pytest.fixture(autouse=True)
def _fresh_notices():
    reset_notices()
    yield
    reset_notices()


def _nc_model():
    torch.manual_seed(0)
    return build_model({"preset": "tiny", **NC}).eval()  # tiny weights, the V2-B preset's licence


def _ply_header(path: Path) -> list[str]:
    raw = path.read_bytes()
    return raw[: raw.index(b"end_header\n")].decode("ascii").splitlines()


def _item(provenance, image=None):
    depth = np.linspace(0.5, 2.0, 20, dtype=np.float32).reshape(4, 5)
    return PredictionItem(depth, {"id": "a", "source": "a.png"}, "disparity", image=image, provenance=provenance)


@pytest.mark.parametrize(("provenance", "line"), [
    (NC, "model weights licence CC-BY-NC-4.0 (depth-anything-v2-vitb)"),
    ({"licence": "unknown"}, "model weights licence unknown"),
])
def test_writers_record_the_licence(tmp_path, provenance, line):
    image = np.zeros((4, 5, 3), np.uint8)
    Png16Writer(str(tmp_path)).write_items([_item(provenance)])
    ColormapWriter(str(tmp_path)).write_items([_item(provenance)])
    PlyWriter(str(tmp_path), hfov_deg=60).write_items([_item(provenance, image)])
    with Image.open(tmp_path / "a_depth16.png") as png:
        meta = json.loads(png.text["da_toolkit"])
        assert meta["licence"] == provenance["licence"] and meta.get("origin") == provenance.get("origin")
        assert png.text["Licence"] == line
    with Image.open(tmp_path / "a_vis.png") as vis:
        assert vis.text["Licence"] == line
    assert f"comment {line}" in _ply_header(tmp_path / "a.ply")


def test_video_tag_records_the_licence(tmp_path):
    import imageio_ffmpeg

    from da_toolkit.inference.video import DepthVideoWriter

    writer = DepthVideoWriter(str(tmp_path))
    rng = np.random.default_rng(0)
    writer.write_items([PredictionItem(rng.random((16, 16)).astype(np.float32),
                                       {"id": f"clip/{i}", "video": "clip", "frame": i, "fps": 5.0},
                                       provenance=dict(NC)) for i in range(3)])
    writer.close_all()
    out = tmp_path / "meta.txt"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "clip_depth.mp4"),
                    "-f", "ffmetadata", str(out)], check=True, timeout=60)
    assert "comment=model weights licence CC-BY-NC-4.0 (depth-anything-v2-vitb)" in out.read_text()


def test_predict_records_the_licence_and_shows_the_notice(tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / "a.png")
    save_weights(_nc_model(), tmp_path / "nc.safetensors")  # the file records the licence
    monkeypatch.chdir(tmp_path)
    args = ["predict", "--config", str(RECIPES / "infer.yaml"), "--data.path", "photos", *OPTS,
            "--model.model=nc.safetensors", "--output_dir", "out",
            "--trainer.callbacks+=da_toolkit.inference.writers.PlyWriter", "--trainer.callbacks.hfov_deg=60"]
    with caplog.at_level(logging.WARNING, logger=LICENCE_LOGGER):
        assert main(args) == 0
    notices = [r.getMessage() for r in caplog.records if r.name == LICENCE_LOGGER]
    assert len(notices) == 1 and "CC-BY-NC-4.0" in notices[0] and "non-commercial" in notices[0]
    with Image.open(tmp_path / "out" / "a_depth16.png") as png:
        assert json.loads(png.text["da_toolkit"])["licence"] == "CC-BY-NC-4.0"
    assert "comment model weights licence CC-BY-NC-4.0 (depth-anything-v2-vitb)" in _ply_header(
        tmp_path / "out" / "a.ply")

# ONNX metadata_props: tests/inference/test_export.py::test_export_command_parity_two_sizes_two_batches
