import json

import matplotlib
import numpy as np
import pytest
from PIL import Image

from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.png16 import TEXT_KEY, read_png16
from da_toolkit.inference.writers import (
    BUILTIN_WRITERS,
    ColormapWriter,
    NpyWriter,
    PlyWriter,
    Png16Writer,
)


def _item(depth, kind="disparity", id_="sub/a", image=None):
    return PredictionItem(depth=depth, meta={"id": id_, "source": f"/in/{id_}.jpg"}, output_kind=kind, image=image)


def _read_ply(path):
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    n = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    props = [h.split() for h in header if h.startswith("property")]
    types = {"float": "<f4", "uchar": "u1"}
    dtype = [(p[2], types[p[1]]) for p in props]
    return header, np.frombuffer(raw[end:], dtype=dtype, count=n)


def test_builtin_names():
    assert {"npy", "png16", "colormap", "ply"} <= set(BUILTIN_WRITERS)


def test_npy_roundtrip_mirrors_tree(tmp_path):
    d = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    w = NpyWriter(str(tmp_path))
    w.write_items([_item(d)])
    out = tmp_path / "sub" / "a.npy"
    got = np.load(out)
    assert got.dtype == np.float32 and np.array_equal(got, d)
    assert [p.name for p in tmp_path.rglob("*")] == ["sub", "a.npy"]  # no temp files left


def test_png16_scale_roundtrip_per_image(tmp_path):
    d = np.linspace(0.5, 3.0, 6 * 9).reshape(6, 9).astype(np.float32)
    w = Png16Writer(str(tmp_path))
    w.write_items([_item(d)])
    path = tmp_path / "sub" / "a_depth16.png"
    with Image.open(path) as img:
        raw = np.array(img)
        meta = json.loads(img.text[TEXT_KEY])
    assert raw.dtype == np.uint16 and raw.min() == 0 and raw.max() == 65535
    # independent decode: value * scale + offset, quantisation error <= half a step
    step = (3.0 - 0.5) / 65535
    assert meta["scale"] == pytest.approx(step) and meta["offset"] == pytest.approx(0.5)
    assert np.abs(raw * meta["scale"] + meta["offset"] - d).max() <= step / 2 + 1e-6
    back, meta2 = read_png16(path)
    assert meta2["kind"] == "disparity"
    assert np.abs(back - d).max() <= step / 2 + 1e-6


def test_png16_fixed_scale_millimetres(tmp_path):
    d = np.array([[1.0, 2.5], [0.0012, 70.0]], np.float32)
    Png16Writer(str(tmp_path), scale=0.001).write_items([_item(d, kind="metric", id_="m")])
    with Image.open(tmp_path / "m_depth16.png") as img:
        raw = np.array(img)
    assert raw.tolist() == [[1000, 2500], [1, 65535]]  # 70 m clips at 65.535 m


def test_colormap_matches_matplotlib(tmp_path):
    d = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 2.0]], np.float32)
    for cmap in ("Spectral_r", "inferno"):
        ColormapWriter(str(tmp_path), cmap=cmap, suffix=f"_{cmap}.png").write_items([_item(d, id_="c")])
        got = np.array(Image.open(tmp_path / f"c_{cmap}.png"))
        expected = matplotlib.colormaps[cmap](d / 4.0, bytes=True)[..., :3]
        assert np.array_equal(got, expected)


def test_colormap_metric_inverted_and_side_by_side(tmp_path):
    d = np.array([[1.0, 3.0]], np.float32)
    img = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    w = ColormapWriter(str(tmp_path), cmap="inferno", side_by_side=True)
    w.write_items([_item(d, kind="metric", id_="s", image=img)])
    got = np.array(Image.open(tmp_path / "s_vis.png"))
    assert got.shape == (1, 4, 3)
    assert np.array_equal(got[:, :2], img)
    lut = matplotlib.colormaps["inferno"]
    assert np.array_equal(got[0, 2], lut(1.0, bytes=True)[:3])  # nearest (1 m) is the hot end
    assert np.array_equal(got[0, 3], lut(0.0, bytes=True)[:3])


def test_ply_metric_equals_backprojection(tmp_path):
    rng = np.random.default_rng(1)
    h, w = 4, 6
    d = rng.uniform(1.0, 5.0, (h, w)).astype(np.float32)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    fx, fy, cx, cy = 50.0, 40.0, 2.5, 1.5
    PlyWriter(str(tmp_path), fx=fx, fy=fy, cx=cx, cy=cy).write_items([_item(d, "metric", "p", img)])
    header, rec = _read_ply(tmp_path / "p.ply")
    assert any("metres" in line for line in header)
    K_inv = np.linalg.inv(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]))
    expected = []
    for v in range(h):
        for u in range(w):
            expected.append(d[v, u] * (K_inv @ np.array([u, v, 1.0])))
    pts = np.stack([rec["x"], rec["y"], rec["z"]], 1)
    np.testing.assert_allclose(pts, np.array(expected), rtol=1e-5, atol=1e-6)
    cols = np.stack([rec["red"], rec["green"], rec["blue"]], 1)
    assert np.array_equal(cols, img.reshape(-1, 3))


def test_ply_relative_assumption_and_sky(tmp_path):
    disp = np.array([[2.0, 1.0], [0.5, 0.0]], np.float32)  # 0 = sky, dropped
    PlyWriter(str(tmp_path), hfov_deg=90.0, relative_median_depth=2.0).write_items([_item(disp, id_="r")])
    header, rec = _read_ply(tmp_path / "r.ply")
    assert any("assuming zero shift" in line for line in header)
    z = np.sort(rec["z"])
    # depth = k / disp with median(1/2, 1, 2) = 1 scaled to 2 -> 1, 2, 4
    np.testing.assert_allclose(z, [1.0, 2.0, 4.0], rtol=1e-6)
    f = 1.0 / np.tan(np.pi / 4)  # width 2 / 2 / tan(45 deg)
    x_of_first = (0 - 0.5) * 1.0 / f  # pixel (0,0): disp 2 -> z 1
    assert rec["x"][np.argmin(rec["z"])] == pytest.approx(x_of_first)


def test_ply_requires_intrinsics():
    with pytest.raises(ValueError, match="intrinsics"):
        PlyWriter("x")


def test_skip_finished_and_bad_items(tmp_path):
    d = np.ones((2, 2), np.float32)
    w = NpyWriter(str(tmp_path))
    out = tmp_path / "sub" / "a.npy"
    out.parent.mkdir(parents=True)
    np.save(out, np.zeros((1,), np.float32))
    w.write_items([_item(d), PredictionItem(None, {"id": "bad", "source": "bad.jpg"}, error="cannot decode")])
    assert np.load(out).shape == (1,)  # finished file untouched
    assert not (tmp_path / "bad.npy").exists()
    assert w.written == 0


def test_write_failure_is_reported_and_run_continues(tmp_path):
    w = NpyWriter(str(tmp_path))
    good = _item(np.ones((2, 2), np.float32), id_="good")
    bad = _item(np.ones((2, 2), np.float32), id_="bad")
    (tmp_path / "bad.npy").mkdir()  # a folder where the file should go -> the replace fails
    w.overwrite = True
    with pytest.warns(UserWarning, match="/in/bad.jpg"):
        w.write_items([bad, good])
    assert (tmp_path / "good.npy").exists()
    assert w.failures and w.failures[0][0] == "/in/bad.jpg"
