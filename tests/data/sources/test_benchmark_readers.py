"""Benchmark readers on small files written here in each dataset's real format."""

from __future__ import annotations

import struct

import h5py
import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.sources import DIODE, ETH3D, Hypersim, KITTIDepth, NYUv2, Sintel, VirtualKITTI2
from da_toolkit.data.sources.hypersim import range_to_planar
from da_toolkit.data.sources.kitti import parse_split_line


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


# --- NYUv2 ---------------------------------------------------------------------------------

def _nyu_mat(path, n=4, h=5, w=7):
    images = np.stack([_rgb(h, w, i) for i in range(n)])  # (N, H, W, 3)
    depths = np.random.default_rng(9).uniform(0.5, 9.0, (n, h, w)).astype(np.float32)
    depths[0, 0, 0] = 0.0
    labels = np.random.default_rng(3).integers(0, 5, (n, h, w)).astype(np.uint16)
    with h5py.File(path, "w") as f:  # MATLAB v7.3 layout as h5py sees it: reversed axes
        f["images"] = images.transpose(0, 3, 2, 1)  # (N, 3, W, H)
        f["depths"] = depths.transpose(0, 2, 1)  # (N, W, H)
        f["labels"] = labels.transpose(0, 2, 1)
    return images, depths, labels


def test_nyuv2_mat_layout_and_split(tmp_path):
    images, depths, labels = _nyu_mat(tmp_path / "nyu.mat")
    (tmp_path / "test.txt").write_text("2\n4\n")
    src = NYUv2(tmp_path / "nyu.mat", split="test", split_file=tmp_path / "test.txt", with_seg=True)
    assert len(src) == 2
    s = src[1]  # 1-based index 4 -> frame 3
    np.testing.assert_array_equal(s["image"], images[3])
    np.testing.assert_allclose(s["depth"], depths[3])
    np.testing.assert_array_equal(s["seg"], np.where(labels[3] == 0, 255, labels[3]))
    assert s["meta"]["id"] == "0004" and s["depth_kind"] == "metric"
    assert s["intrinsics"][0, 2] == pytest.approx(325.58245)
    whole = NYUv2(tmp_path / "nyu.mat", split="all")
    assert len(whole) == 4 and not whole[0]["valid"][0, 0] and whole[0]["valid"].sum() == 34


def test_nyuv2_splits_mat_and_errors(tmp_path):
    from scipy.io import savemat

    _nyu_mat(tmp_path / "nyu.mat")
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [3]]), "testNdxs": np.array([[2], [4]])})
    assert NYUv2(tmp_path / "nyu.mat", split="train", split_file=tmp_path / "splits.mat").indices == [0, 2]
    with pytest.raises(ValueError, match="split_file"):
        NYUv2(tmp_path / "nyu.mat", split="test")
    (tmp_path / "bad.txt").write_text("9\n")
    with pytest.raises(SampleReadError, match="out of range"):
        NYUv2(tmp_path / "nyu.mat", split="test", split_file=tmp_path / "bad.txt")
    (tmp_path / "v5.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
    with pytest.raises(SampleReadError, match="HDF5"):
        NYUv2(tmp_path / "v5.mat", split="all")


# --- KITTI ---------------------------------------------------------------------------------

def test_kitti_split_line_formats():
    rgb, depth, focal = parse_split_line("2011_09_26/2011_09_26_drive_0002_sync 69 l")
    assert rgb == "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    assert depth == "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    assert focal is None
    assert parse_split_line("a/b.png None 721.5377") == ("a/b.png", None, 721.5377)
    assert parse_split_line("2011_09_26/x_sync 5 r")[0].endswith("image_03/data/0000000005.png")


def test_kitti_reader(tmp_path):
    raw, gt = tmp_path / "raw", tmp_path / "gt"
    rgb = _rgb(6, 10)
    _save_png(raw / "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png", rgb)
    metres = np.zeros((6, 10), np.float32)
    metres[3:, ::2] = np.linspace(2.0, 90.0, 15).reshape(3, 5)
    _save_png(gt / "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png",
              np.round(metres * 256).astype(np.uint16))
    (tmp_path / "eigen.txt").write_text(
        "2011_09_26/2011_09_26_drive_0002_sync 69 l\n2011_09_26/2011_09_26_drive_0002_sync 70 l\n"
    )
    src = KITTIDepth(raw, gt, tmp_path / "eigen.txt")
    assert len(src) == 1 and len(src.skipped) == 1
    s = src[0]
    np.testing.assert_array_equal(s["image"], rgb)
    expect = (metres > 0) & (metres <= 80.0)
    np.testing.assert_array_equal(s["valid"], expect)
    np.testing.assert_allclose(s["depth"][expect], metres[expect], atol=1 / 512)
    # the official annotated-depth archive puts drives under train/ and val/
    (gt / "val").mkdir()
    (gt / "2011_09_26_drive_0002_sync").rename(gt / "val" / "2011_09_26_drive_0002_sync")
    moved = KITTIDepth(raw, gt, tmp_path / "eigen.txt")
    assert len(moved) == 1 and moved.pairs[0].depth.parent.parts[-5] == "val"
    np.testing.assert_array_equal(moved[0]["valid"], expect)


# --- DIODE ---------------------------------------------------------------------------------

def test_diode_reader(tmp_path):
    scan = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    stem = "00019_00183_indoors_000_010"
    _save_png(scan / f"{stem}.png", _rgb(4, 5))
    depth = np.random.default_rng(0).uniform(1, 10, (4, 5, 1)).astype(np.float32)
    mask = np.ones((4, 5), np.float32)
    mask[0] = 0
    np.save(scan / f"{stem}_depth.npy", depth)
    np.save(scan / f"{stem}_depth_mask.npy", mask)
    out = tmp_path / "val" / "outdoor" / "scene_1" / "scan_1"
    _save_png(out / "o.png", _rgb(4, 5))
    np.save(out / "o_depth.npy", depth)
    np.save(out / "o_depth_mask.npy", mask)
    assert len(DIODE(tmp_path / "val")) == 2
    src = DIODE(tmp_path / "val", scene_type="indoors")
    assert len(src) == 1
    s = src[0]
    assert s["meta"]["id"] == f"indoors/scene_00019/scan_00183/{stem}"
    np.testing.assert_array_equal(s["valid"], mask > 0)
    np.testing.assert_allclose(s["depth"][1:], depth[1:, :, 0])
    (scan / f"{stem}_depth_mask.npy").unlink()
    with pytest.raises(SampleReadError, match="mask"):
        src[0]


# --- Sintel --------------------------------------------------------------------------------

def test_sintel_reader(tmp_path):
    _save_png(tmp_path / "training/final/alley_1/frame_0001.png", _rgb(3, 4))
    depth = np.array([[1, 2, 3, 4], [5, 80, 7, 8], [9, 10, 11, 0]], np.float32)
    (tmp_path / "training/depth/alley_1").mkdir(parents=True)
    (tmp_path / "training/depth/alley_1/frame_0001.dpt").write_bytes(
        b"PIEH" + struct.pack("<ii", 4, 3) + depth.astype("<f4").tobytes()
    )
    k = np.array([[688.0, 0, 511.5], [0, 688.0, 217.5], [0, 0, 1]])
    (tmp_path / "training/camdata_left/alley_1").mkdir(parents=True)
    (tmp_path / "training/camdata_left/alley_1/frame_0001.cam").write_bytes(
        b"PIEH" + k.astype("<f8").tobytes() + np.eye(3, 4).astype("<f8").tobytes()
    )
    s = Sintel(tmp_path)[0]
    assert s["meta"]["id"] == "alley_1/frame_0001"
    np.testing.assert_array_equal(s["valid"], (depth > 0) & (depth <= 72))
    np.testing.assert_allclose(s["intrinsics"], k)
    assert len(Sintel(tmp_path, scenes=["cave_2"])) == 0


# --- ETH3D ---------------------------------------------------------------------------------

def test_eth3d_raw_float(tmp_path):
    scene = tmp_path / "courtyard"
    img = _rgb(4, 6)
    (scene / "images/dslr_images").mkdir(parents=True)
    Image.fromarray(img).save(scene / "images/dslr_images/DSC_0001.JPG", format="JPEG", quality=95)
    depth = np.full((4, 6), 7.5, np.float32)
    depth[0, 0] = np.inf
    depth[1, 1] = 0.0
    (scene / "ground_truth_depth/dslr_images").mkdir(parents=True)
    (scene / "ground_truth_depth/dslr_images/DSC_0001.JPG").write_bytes(depth.astype("<f4").tobytes())
    src = ETH3D(tmp_path)
    s = src[0]
    assert s["meta"]["id"] == "courtyard/DSC_0001.JPG"
    assert s["valid"].sum() == 22 and not s["valid"][0, 0] and not s["valid"][1, 1]
    assert (s["depth"][s["valid"]] == 7.5).all()
    (scene / "ground_truth_depth/dslr_images/DSC_0001.JPG").write_bytes(b"\x00" * 12)
    with pytest.raises(SampleReadError, match="96"):
        src[0]


# --- Hypersim ------------------------------------------------------------------------------

def test_range_to_planar_on_a_fronto_parallel_plane():
    h, w, f, z = 6, 8, 5.0, 3.0
    x = np.arange(w) - (w - 1) / 2
    y = np.arange(h) - (h - 1) / 2
    ray_len = z * np.sqrt(x[None] ** 2 + y[:, None] ** 2 + f * f) / f  # distance to the plane Z = z
    np.testing.assert_allclose(range_to_planar(ray_len.astype(np.float32), f), z, rtol=1e-6)


def test_hypersim_reader(tmp_path):
    base = tmp_path / "ai_001_001" / "images"
    (base / "scene_cam_00_final_preview").mkdir(parents=True)
    Image.fromarray(_rgb(6, 8)).save(base / "scene_cam_00_final_preview/frame.0000.tonemap.jpg", quality=95)
    (base / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    f = 886.81 * 8 / 1024
    x = np.arange(8) - 3.5
    y = np.arange(6) - 2.5
    dist = (2.0 * np.sqrt(x[None] ** 2 + y[:, None] ** 2 + f * f) / f).astype(np.float16)
    dist[0, 0] = np.nan
    with h5py.File(base / "scene_cam_00_geometry_hdf5/frame.0000.depth_meters.hdf5", "w") as h5:
        h5["dataset"] = dist
    s = Hypersim(tmp_path)[0]
    assert s["meta"]["id"] == "ai_001_001/scene_cam_00/frame.0000"
    assert not s["valid"][0, 0] and s["valid"].sum() == 47
    np.testing.assert_allclose(s["depth"][s["valid"]], 2.0, rtol=2e-3)
    assert s["intrinsics"][0, 0] == pytest.approx(f)


# --- Virtual KITTI 2 -----------------------------------------------------------------------

def test_vkitti2_reader(tmp_path):
    frames = tmp_path / "Scene01" / "clone" / "frames"
    (frames / "rgb/Camera_0").mkdir(parents=True)
    Image.fromarray(_rgb(3, 4)).save(frames / "rgb/Camera_0/rgb_00000.jpg", quality=95)
    cm = np.array([[100, 250, 65535, 8000], [1, 2, 3, 9000]], np.uint16).repeat(1, 0)
    cm = np.vstack([cm, cm[:1]])
    _save_png(frames / "depth/Camera_0/depth_00000.png", cm)
    (tmp_path / "Scene01/clone/intrinsic.txt").write_text(
        "frame cameraID K[0,0] K[1,1] K[0,2] K[1,2]\n0 0 725.0087 725.0087 620.5 187\n0 1 725.0087 725.0087 620.5 187\n"
    )
    s = VirtualKITTI2(tmp_path)[0]
    expect = (cm < 65535) & (cm / 100 <= 80)
    np.testing.assert_array_equal(s["valid"], expect)
    np.testing.assert_allclose(s["depth"][expect], cm[expect] / 100.0, rtol=1e-6)
    np.testing.assert_allclose(s["intrinsics"][:2, 2], [620.5, 187])
    assert s["meta"]["id"] == "Scene01/clone/Camera_0/00000"
