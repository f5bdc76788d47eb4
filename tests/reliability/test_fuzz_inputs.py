"""Fuzzing image decoding and ``infer_image`` with odd inputs (issue: reliability).

Every generated file is either decoded to an RGB uint8 ``(H, W, 3)`` array or rejected with a
``SampleReadError`` that names the file; ``infer_image`` on any decodable image returns a finite
float32 map of the input's size.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import read_rgb
from da_toolkit.models import build_tiny_model

MODES = ["RGB", "RGBA", "L", "LA", "P", "I;16", "CMYK", "1", "F"]
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "tiff": "TIFF", "webp": "WEBP"}
# which PIL modes each encoder accepts (others are converted by the test before saving)
SAVABLE = {
    "PNG": {"RGB", "RGBA", "L", "LA", "P", "I;16", "1"},
    "JPEG": {"RGB", "L", "CMYK"},
    "BMP": {"RGB", "L", "P", "1"},
    "TIFF": {"RGB", "RGBA", "L", "LA", "P", "I;16", "CMYK", "1", "F"},
    "WEBP": {"RGB", "RGBA"},
}


def _encode(arr: np.ndarray, mode: str, fmt: str) -> tuple[bytes, str]:
    img = Image.fromarray(arr, "RGB")
    if mode == "I;16":
        img = Image.fromarray(arr[..., 0].astype(np.uint16) * 257)  # uint16 -> mode I;16
    elif mode == "F":
        img = Image.fromarray(arr[..., 0].astype(np.float32) / 255.0)  # float32 -> mode F
    else:
        img = img.convert(mode)
    if mode not in SAVABLE[fmt]:
        img = img.convert("RGB")
        mode = "RGB"
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue(), mode


@st.composite
def image_files(draw: st.DrawFn) -> tuple[bytes, str, tuple[int, int] | None]:
    """(file bytes, extension, expected (H, W) or None when the file must be rejected)."""
    ext = draw(st.sampled_from(sorted(FORMATS)))
    kind = draw(st.sampled_from(["valid", "truncated", "garbage", "empty"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=300)), ext, None
    if kind == "empty":
        return b"", ext, None
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    data, _ = _encode(arr, draw(st.sampled_from(MODES)), FORMATS[ext])
    if kind == "truncated":
        cut = draw(st.integers(0, max(0, len(data) // 2)))
        return data[:cut], ext, None
    return data, ext, (h, w)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=image_files())
def test_decoding_returns_rgb_or_a_named_error(case: tuple[bytes, str, tuple[int, int] | None], tmp_path: Path) -> None:
    data, ext, expected = case
    path = tmp_path / f"item.{ext}"
    path.write_bytes(data)
    try:
        rgb = read_rgb(path)
    except SampleReadError as exc:
        assert str(path) in str(exc)
        assert expected is None, f"a valid {ext} image was rejected: {exc}"
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    if expected is not None:
        assert rgb.shape[:2] == expected
    # truncated files that PIL can still decode must at least give a plausible image
    assert rgb.shape[0] >= 1 and rgb.shape[1] >= 1


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    arr = np.zeros((10, 30, 3), dtype=np.uint8)
    arr[:, :5] = 255  # bright band on the left
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 CW for display
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif, quality=95)
    rgb = read_rgb(path)
    assert rgb.shape[:2] == (30, 10)
    # after a 90 degree clockwise rotation the left band becomes the top band
    assert rgb[:5].mean() > 200 and rgb[-5:].mean() < 50


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_tiny_model().eval()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 64),
    w=st.integers(1, 64),
    seed=st.integers(0, 1000),
)
def test_infer_image_any_small_size(tiny_model: torch.nn.Module, h: int, w: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = tiny_model.infer_image(rgb, input_size=28)
    assert out.shape == (h, w) and out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("shape", [(1, 1), (2000, 10), (10, 2000)])
def test_infer_image_extreme_shapes(tiny_model: torch.nn.Module, shape: tuple[int, int]) -> None:
    rgb = np.full((*shape, 3), 128, dtype=np.uint8)
    out = tiny_model.infer_image(rgb, input_size=14)
    assert out.shape == shape and np.isfinite(out).all()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((8, 8), dtype=np.uint8),
        np.zeros((8, 8, 4), dtype=np.uint8),
        np.zeros((8, 8, 3), dtype=np.float32),
    ],
)
def test_infer_image_rejects_non_rgb_uint8(tiny_model: torch.nn.Module, bad: np.ndarray) -> None:
    with pytest.raises((ValueError, TypeError), match=r"\(H,W,3\)|uint8"):
        tiny_model.infer_image(bad, input_size=28)
