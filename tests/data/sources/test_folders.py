"""Tests of ImageFolder and PairedFolder on files written here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import write_pfm
from da_toolkit.data.sources import ImageFolder, PairedFolder


def _rgb(h=4, w=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_image_folder_recursive_sorted_and_filtered(tmp_path):
    (tmp_path / "b").mkdir()
    Image.fromarray(_rgb(seed=1)).save(tmp_path / "b" / "x.PNG")
    Image.fromarray(_rgb(seed=2)).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(_rgb(seed=3)).save(tmp_path / "c.webp", lossless=True)
    Image.fromarray(_rgb(seed=4)).save(tmp_path / "d.bmp")
    Image.fromarray(_rgb(seed=5)).save(tmp_path / "e.tiff")
    (tmp_path / "notes.txt").write_text("not an image")
    src = ImageFolder(tmp_path)
    ids = [src[i]["meta"]["id"] for i in range(len(src))]
    assert ids == ["a.jpg", "b/x.PNG", "c.webp", "d.bmp", "e.tiff"]
    np.testing.assert_array_equal(src[1]["image"], _rgb(seed=1))
    np.testing.assert_array_equal(src[2]["image"], _rgb(seed=3))
    assert "depth" not in src[0] and src[0]["meta"]["source"] == "image_folder"
    assert src[0]["meta"]["image_ref"]["path"].endswith("a.jpg")
    assert len(ImageFolder(tmp_path, recursive=False)) == 4


def test_image_folder_file_list_and_files(tmp_path):
    for i in range(3):
        Image.fromarray(_rgb(seed=i)).save(tmp_path / f"{i}.png")
    (tmp_path / "list.txt").write_text("# my list\n2.png\n\n0.png\n")
    src = ImageFolder(tmp_path, file_list=tmp_path / "list.txt")
    assert [src[i]["meta"]["id"] for i in range(2)] == ["2.png", "0.png"]
    assert len(ImageFolder(tmp_path, files=["1.png"])) == 1
    with pytest.raises(ValueError, match="either"):
        ImageFolder(tmp_path, files=["1.png"], file_list=tmp_path / "list.txt")
    with pytest.raises(FileNotFoundError, match="nope"):
        ImageFolder(tmp_path / "nope")


def test_image_folder_corrupt_file_names_it(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(SampleReadError, match="z.png"):
        ImageFolder(tmp_path)[0]


def _pair_folder(tmp_path, fmt):
    (tmp_path / "rgb" / "sub").mkdir(parents=True)
    (tmp_path / "depth" / "sub").mkdir(parents=True)
    Image.fromarray(_rgb()).save(tmp_path / "rgb" / "sub" / "f0.jpg", quality=95)
    metres = np.array([[0.5, 1.0, 2.0, 0.0, 3.0, 65.535]] * 4, dtype=np.float32)
    if fmt == "png":
        Image.fromarray(np.round(metres * 1000).astype(np.uint16)).save(tmp_path / "depth" / "sub" / "f0.png")
    elif fmt == "npy":
        np.save(tmp_path / "depth" / "sub" / "f0.npy", metres)
    else:
        write_pfm(tmp_path / "depth" / "sub" / "f0.pfm", metres)
    return metres


@pytest.mark.parametrize("fmt", ["png", "npy", "pfm"])
def test_paired_folder_formats(tmp_path, fmt):
    metres = _pair_folder(tmp_path, fmt)
    invalid = (0.0, 65535.0) if fmt == "png" else (0.0,)
    src = PairedFolder(tmp_path, invalid_values=invalid, intrinsics=(100.0, 101.0, 3.0, 2.0))
    assert len(src) == 1
    s = src[0]
    assert s["meta"]["id"] == "sub/f0" and s["depth_kind"] == "metric"
    expect_valid = metres > 0
    if fmt == "png":
        expect_valid &= metres < 65.0
    np.testing.assert_array_equal(s["valid"], expect_valid)
    np.testing.assert_allclose(s["depth"][s["valid"]], metres[expect_valid], rtol=1e-6)
    assert (s["depth"][~s["valid"]] == 0).all()
    np.testing.assert_array_equal(s["intrinsics"], [[100, 0, 3], [0, 101, 2], [0, 0, 1]])


def test_paired_folder_range_nan_and_scale(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(_rgb(2, 3)).save(tmp_path / "rgb" / "a.png")
    np.save(tmp_path / "depth" / "a.npy", np.array([[1.0, np.nan, 4.0], [np.inf, 10.0, 20.0]], np.float32))
    s = PairedFolder(tmp_path, depth_scale=2.0, min_depth=1.0, max_depth=5.0)[0]
    np.testing.assert_array_equal(s["valid"], [[False, False, True], [False, True, False]])
    np.testing.assert_allclose(s["depth"], [[0, 0, 2.0], [0, 5.0, 0]])


def test_paired_folder_size_mismatch_and_missing_pairs(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    Image.fromarray(_rgb(4, 6)).save(tmp_path / "rgb" / "a.png")
    Image.fromarray(_rgb(4, 6)).save(tmp_path / "rgb" / "b.png")
    np.save(tmp_path / "depth" / "a.npy", np.ones((3, 6), np.float32))
    with pytest.warns(UserWarning, match="1 image"):
        src = PairedFolder(tmp_path)
    with pytest.raises(SampleReadError, match=r"a\.npy.*6x3 but the image is 6x4"):
        src[0]
    with pytest.raises(FileNotFoundError, match="without depth"):
        PairedFolder(tmp_path, require_pairs=True)
