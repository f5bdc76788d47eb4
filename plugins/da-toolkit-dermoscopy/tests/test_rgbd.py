"""RGBDFolder: RGB + 16-bit millimetre depth PNGs -> metric samples, image_ref, errors naming files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import read_rgb
from da_toolkit_dermoscopy import RGBDFolder


def write_pair(root: Path, item_id: str, rgb_value: int, depth_mm: np.ndarray, ext: str = ".png") -> np.ndarray:
    h, w = depth_mm.shape
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = rgb_value
    rgb[..., 1] = np.arange(w, dtype=np.uint8)[None]
    (root / "rgb" / item_id).parent.mkdir(parents=True, exist_ok=True)
    (root / "depth" / item_id).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(root / "rgb" / f"{item_id}{ext}")
    Image.fromarray(depth_mm.astype(np.uint16)).save(root / "depth" / f"{item_id}.png")
    return rgb


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    depth = np.array([[0, 1000, 1500], [2500, 65535, 750]])
    write_pair(tmp_path, "b/frame2", 20, depth * 0 + 500)
    write_pair(tmp_path, "a", 10, depth)
    return tmp_path


def test_samples_follow_the_contract(folder: Path) -> None:
    src = RGBDFolder(folder, intrinsics=(100.0, 101.0, 1.5, 1.0), name="skin3d")
    assert len(src) == 2 and [item[0] for item in src.items] == ["a", "b/frame2"]
    s = src[0]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (2, 3, 3) and int(s["image"][0, 0, 0]) == 10
    assert s["depth_kind"] == "metric" and s["depth"].dtype == np.float32
    np.testing.assert_array_equal(s["valid"], [[False, True, True], [True, False, True]])  # 0 and 65535 invalid
    np.testing.assert_allclose(s["depth"], [[0.0, 1.0, 1.5], [2.5, 0.0, 0.75]])  # millimetres -> metres
    np.testing.assert_allclose(s["intrinsics"], [[100, 0, 1.5], [0, 101, 1.0], [0, 0, 1]])
    assert s["meta"]["source"] == "skin3d" and s["meta"]["id"] == "a"
    ref = s["meta"]["image_ref"]
    assert set(ref) == {"path"} and Path(ref["path"]).is_absolute()
    np.testing.assert_array_equal(read_rgb(ref["path"]), s["image"])  # the reference gives the image back
    assert src[-1]["meta"]["id"] == "b/frame2"
    with pytest.raises(IndexError):
        src[2]


def test_range_and_scale(folder: Path) -> None:
    s = RGBDFolder(folder, depth_scale=100.0, max_depth=20.0)[0]  # centimetres
    np.testing.assert_allclose(s["depth"], [[0, 10, 15], [0, 0, 7.5]])  # 25 m > max_depth: invalid
    assert not s["valid"][1, 0]


def test_missing_depth_error_or_skip(folder: Path) -> None:
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(folder / "rgb" / "lonely.jpg")
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) without a depth PNG, e\.g\. .*depth/lonely\.png"):
        RGBDFolder(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(RGBDFolder(folder, missing="skip")) == 2
    assert any("skipped 1 image(s)" in str(w.message) for w in caught)


def test_bad_files_named(folder: Path) -> None:
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(folder / "depth" / "a.png")  # RGB, not 16-bit
    with pytest.raises(SampleReadError, match=r"depth/a\.png.*single-channel 16-bit"):
        RGBDFolder(folder)[0]
    Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)).save(folder / "depth" / "a.png")
    with pytest.raises(SampleReadError, match=r"depth/a\.png.*depth is 4x4 but the image is 3x2"):
        RGBDFolder(folder)[0]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder .*rgb does not exist"):
        RGBDFolder(tmp_path)
    with pytest.raises(ValueError, match="depth_scale=0"):
        RGBDFolder(tmp_path, depth_scale=0)
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    with pytest.raises(FileNotFoundError, match="no RGB \\+ depth pairs"):
        RGBDFolder(tmp_path)
