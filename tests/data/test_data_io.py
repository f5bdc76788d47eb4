"""Tests of file decoding (read_rgb & friends) and atomic writers."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import (
    atomic_open,
    atomic_save_npy,
    read_npy,
    read_pfm,
    read_png_uint16,
    read_rgb,
    read_sintel_dpt,
    write_pfm,
    write_sintel_dpt,
)


def _pattern(h: int = 6, w: int = 9) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_png_roundtrip(tmp_path):
    arr = _pattern()
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = read_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, arr)


def test_exif_orientation_is_applied(tmp_path):
    arr = _pattern(4, 7)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "r.png", exif=exif.tobytes())
    out = read_rgb(tmp_path / "r.png")
    assert out.shape == (7, 4, 3)
    np.testing.assert_array_equal(out, np.rot90(arr, k=-1))


def test_grayscale_rgba_palette_to_rgb(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (4, 5, 3)
    np.testing.assert_array_equal(out[..., 1], gray)

    rgba = np.dstack([_pattern(4, 5), np.full((4, 5), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgba[..., :3])

    Image.fromarray(_pattern(4, 5)).convert("P").save(tmp_path / "p.png")
    assert read_rgb(tmp_path / "p.png").shape == (4, 5, 3)


def test_sixteen_bit_gray_scaled_by_257(tmp_path):
    vals = np.array([[0, 257, 65535, 257 * 100]], dtype=np.uint16)
    Image.fromarray(vals).save(tmp_path / "g16.png")
    out = read_rgb(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[0, :, 0], [0, 1, 255, 100])


def test_cmyk_jpeg_to_rgb(tmp_path):
    Image.new("CMYK", (5, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    out = read_rgb(tmp_path / "c.jpg")
    assert out.shape == (3, 5, 3)
    r, g, b = out[1, 2].astype(int)
    assert r > 200 and g < 60 and b < 60  # pure red in CMYK


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"", "empty"), (b"hello, not an image", "not a recognised image")],
)
def test_bad_files_name_the_file(tmp_path, content, needle):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(SampleReadError, match=needle) as info:
        read_rgb(path)
    assert str(path) in str(info.value)


def test_truncated_png_is_an_error(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_pattern(64, 64)).save(buf, format="PNG")
    path = tmp_path / "t.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(SampleReadError, match="t.png"):
        read_rgb(path)


def test_missing_file(tmp_path):
    with pytest.raises(SampleReadError, match="does not exist"):
        read_rgb(tmp_path / "nope.png")


def test_png_uint16_exact_values(tmp_path):
    vals = np.array([[0, 1, 1000], [65535, 256, 5000]], dtype=np.uint16)
    Image.fromarray(vals).save(tmp_path / "d.png")
    out = read_png_uint16(tmp_path / "d.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, vals)
    Image.fromarray(_pattern(2, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(SampleReadError, match="single-channel"):
        read_png_uint16(tmp_path / "rgb.png")


def test_pfm_reads_handmade_file(tmp_path):
    # 3 wide, 2 high, little endian, rows stored bottom-to-top
    bottom, top = [4.0, 5.0, 6.0], [1.0, 2.0, 3.0]
    data = b"Pf\n3 2\n-1.0\n" + struct.pack("<6f", *bottom, *top)
    (tmp_path / "a.pfm").write_bytes(data)
    np.testing.assert_array_equal(read_pfm(tmp_path / "a.pfm"), [top, bottom])
    # big endian (positive scale)
    data = b"Pf\n3 2\n1.0\n" + struct.pack(">6f", *bottom, *top)
    (tmp_path / "b.pfm").write_bytes(data)
    np.testing.assert_array_equal(read_pfm(tmp_path / "b.pfm"), [top, bottom])


def test_pfm_roundtrip_and_errors(tmp_path):
    arr = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    write_pfm(tmp_path / "x.pfm", arr)
    np.testing.assert_array_equal(read_pfm(tmp_path / "x.pfm"), arr)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(SampleReadError, match="bad.pfm"):
        read_pfm(tmp_path / "bad.pfm")
    (tmp_path / "short.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + b"\x00" * 8)
    with pytest.raises(SampleReadError, match="truncated"):
        read_pfm(tmp_path / "short.pfm")


def test_sintel_dpt_handmade(tmp_path):
    depth = np.array([[1.5, 2.0, 3.25], [10.0, 0.5, 7.0]], dtype=np.float32)
    data = b"PIEH" + struct.pack("<ii", 3, 2) + depth.astype("<f4").tobytes()
    (tmp_path / "a.dpt").write_bytes(data)
    np.testing.assert_array_equal(read_sintel_dpt(tmp_path / "a.dpt"), depth)
    write_sintel_dpt(tmp_path / "b.dpt", depth)
    assert (tmp_path / "b.dpt").read_bytes() == data
    (tmp_path / "c.dpt").write_bytes(b"XXXX" + data[4:])
    with pytest.raises(SampleReadError, match="PIEH"):
        read_sintel_dpt(tmp_path / "c.dpt")
    (tmp_path / "d.dpt").write_bytes(data[:-4])
    with pytest.raises(SampleReadError, match="truncated"):
        read_sintel_dpt(tmp_path / "d.dpt")


def test_npy_checks(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 3, 1), np.float32))
    assert read_npy(tmp_path / "a.npy", ndim=2).shape == (2, 3)
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(SampleReadError, match="o.npy"):
        read_npy(tmp_path / "o.npy")
    with pytest.raises(SampleReadError, match="4-D"):
        read_npy(tmp_path / "a.npy", ndim=4)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "x.npy"
    atomic_save_npy(target, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("boom")
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npy"]  # no temp file left behind
