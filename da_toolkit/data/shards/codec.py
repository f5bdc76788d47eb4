"""Encoding of samples as WebDataset members (``<key>.<ext>`` files of one tar shard).

Members of one sample (``key`` = the sample's position in its shard, 9 digits):

* ``key.jpg`` / ``key.png`` / ``key.webp``: the RGB image;
* ``key.json``: ``{"id", "source", "image_ref", "depth_kind", "intrinsics", "disp_range"}`` (each
  optional except ``id``);
* ``key.depth.npy``: float32 ``(H, W)`` ground-truth depth in the units of ``depth_kind``;
* ``key.valid.png``: uint8 ``(H, W)`` mask, 1 = valid;
* ``key.seg.png``: segmentation, 8-bit (16-bit when labels exceed 255);
* ``key.disp.f16z``: a pseudo-label, zlib-compressed float16 relative disparity
  (:func:`encode_disparity_f16z`; ``disp_shape`` in ``key.json``), or
* ``key.disp.png``: a pseudo-label, 16-bit PNG of relative disparity (:func:`encode_disparity`;
  ``disp_range`` in ``key.json``).
"""

from __future__ import annotations

import io
import json
import zlib
from typing import Any

import numpy as np
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.io import decode_rgb

IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
DISPARITY_LEVELS = 65535  # 16-bit code 0 = invalid, 1..65535 = lo..hi


def encode_image(image: np.ndarray, fmt: str = "jpg", quality: int = 95) -> bytes:
    """uint8 ``(H, W, 3)`` -> encoded bytes (``jpg`` / ``png`` / ``webp``)."""
    pil_format = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}.get(fmt)
    if pil_format is None:
        raise ValueError(f"image format {fmt!r}: expected one of {IMAGE_EXTS}")
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": quality} if pil_format in ("JPEG", "WEBP") else {"compress_level": 1}
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=pil_format, **kwargs)
    return buf.getvalue()


def decode_image(data: bytes, where: str) -> np.ndarray:
    """Encoded image bytes -> RGB uint8 ``(H, W, 3)``: the folder sources' decoding
    (:func:`da_toolkit.data.io.decode_rgb`: EXIF orientation, 16-bit/greyscale/RGBA -> RGB)."""
    return decode_rgb(data, where)


def encode_png(arr: np.ndarray) -> bytes:
    """uint8/uint16 ``(H, W)`` -> PNG bytes (lossless)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_png(data: bytes, where: str) -> np.ndarray:
    """PNG bytes -> ``(H, W)`` array with the stored integer values."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
        arr = np.asarray(img)
    except Exception as exc:  # noqa: BLE001
        raise SampleReadError(where, f"corrupt PNG ({exc})") from None
    if arr.ndim != 2:
        raise SampleReadError(where, f"expected a single-channel PNG, got shape {arr.shape}")
    return arr


def encode_npy(arr: np.ndarray) -> bytes:
    """Array -> ``.npy`` bytes."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes, where: str) -> np.ndarray:
    """``.npy`` bytes -> array (no pickles)."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise SampleReadError(where, f"corrupt .npy ({exc})") from None


def encode_disparity(disparity: np.ndarray) -> tuple[bytes, list[float]]:
    """Relative disparity float ``(H, W)`` -> (16-bit PNG bytes, ``[lo, hi]``).

    Finite values are mapped linearly from ``[lo, hi]`` (the per-image min and max) onto codes
    ``1..65535``; non-finite values get code 0 (read back as invalid). The round-trip error of a
    finite value is at most ``(hi - lo) / 65534 / 2`` (half a quantisation step).
    """
    arr = np.asarray(disparity, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got shape {arr.shape}")
    finite = np.isfinite(arr)
    if finite.any():
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
    else:
        lo, hi = 0.0, 0.0
    span = hi - lo
    codes = np.zeros(arr.shape, dtype=np.uint16)
    if span > 0:
        q = np.rint((arr[finite] - lo) / span * (DISPARITY_LEVELS - 1)) + 1
        codes[finite] = np.clip(q, 1, DISPARITY_LEVELS).astype(np.uint16)
    else:
        codes[finite] = 1
    return encode_png(codes), [lo, hi]


def decode_disparity(data: bytes, disp_range: list[float], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_disparity`: (float32 disparity ``(H, W)``, bool valid ``(H, W)``)."""
    codes = decode_png(data, where)
    if codes.dtype != np.uint16:
        raise SampleReadError(where, f"pseudo-label PNG must be 16-bit, got {codes.dtype}")
    try:
        lo, hi = (float(v) for v in disp_range)
    except (TypeError, ValueError):
        raise SampleReadError(where, f"disp_range must be [lo, hi], got {disp_range!r}") from None
    valid = codes > 0
    disp = lo + (codes.astype(np.float64) - 1) * ((hi - lo) / (DISPARITY_LEVELS - 1))
    return np.where(valid, disp, 0.0).astype(np.float32), valid


def encode_disparity_f16z(disparity: np.ndarray, level: int = 6) -> tuple[bytes, list[int]]:
    """Relative disparity float ``(H, W)`` -> (zlib-compressed float16 bytes, ``[H, W]``).

    Same values as the file-per-item store's float16 ``.npy``: relative error at most 2^-11
    (4.9e-4) for values in float16's normal range (>= 6.1e-5); non-finite values stay
    non-finite (read back as invalid).
    """
    arr = np.asarray(disparity)
    if arr.ndim != 2:
        raise ValueError(f"disparity must be (H, W), got shape {arr.shape}")
    return zlib.compress(np.ascontiguousarray(arr, dtype="<f2").tobytes(), level), [int(s) for s in arr.shape]


def decode_disparity_f16z(data: bytes, shape: list[int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_disparity_f16z`: (float32 disparity ``(H, W)``, bool valid)."""
    try:
        h, w = (int(s) for s in shape)
        arr = np.frombuffer(zlib.decompress(data), dtype="<f2").reshape(h, w).astype(np.float32)
    except (TypeError, ValueError, zlib.error) as exc:
        raise SampleReadError(where, f"corrupt float16 disparity ({exc})") from None
    valid = np.isfinite(arr)
    return np.where(valid, arr, np.float32(0.0)), valid


def encode_sample(sample: dict[str, Any], image_format: str = "jpg", quality: int = 95) -> dict[str, bytes]:
    """A sample dict (``da_toolkit.data.sources.base`` format) -> WebDataset members (no ``__key__``)."""
    meta = sample.get("meta", {})
    info: dict[str, Any] = {"id": str(meta.get("id")), "source": meta.get("source")}
    if meta.get("image_ref") is not None:
        info["image_ref"] = meta["image_ref"]
    out: dict[str, bytes] = {image_format: encode_image(sample["image"], image_format, quality)}
    if "depth" in sample:
        info["depth_kind"] = sample["depth_kind"]
        out["depth.npy"] = encode_npy(np.asarray(sample["depth"], dtype=np.float32))
        out["valid.png"] = encode_png(np.asarray(sample["valid"], dtype=np.uint8))
    if "seg" in sample:
        seg = np.asarray(sample["seg"])
        dtype = np.uint8 if seg.min() >= 0 and seg.max() < 256 else np.uint16
        out["seg.png"] = encode_png(seg.astype(dtype))
    if "intrinsics" in sample:
        info["intrinsics"] = [float(v) for v in np.asarray(sample["intrinsics"]).reshape(-1)]
    out["json"] = json.dumps(info, sort_keys=True).encode()
    return out


def read_info(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The ``json`` member of a raw sample (``{}`` when absent)."""
    if "json" not in raw:
        return {}
    try:
        info = json.loads(raw["json"])
    except (ValueError, UnicodeDecodeError) as exc:
        raise SampleReadError(where, f"bad json member ({exc})") from None
    if not isinstance(info, dict):
        raise SampleReadError(where, "json member must be an object")
    return info


def raw_image(raw: dict[str, Any], where: str) -> bytes | None:
    """The encoded image member of a raw sample, if any."""
    for ext in IMAGE_EXTS:
        if ext in raw:
            return raw[ext]
    return None


def decode_sample(raw: dict[str, Any], *, source: str, where: str, labeled: bool) -> dict[str, Any]:
    """Raw WebDataset sample (``{"__key__", ext: bytes}``) -> sample dict.

    ``labeled=True`` requires ``depth.npy`` (+ ``valid.png`` when present). The id is the
    ``json`` member's ``id``, else the shard key.

    Raises:
        SampleReadError: a missing or corrupt member (``where`` names shard and key).
    """
    from da_toolkit.data.sources.base import (
        make_sample,  # lazy: data.sources registers the shard sources
    )

    info = read_info(raw, where)
    data = raw_image(raw, where)
    if data is None:
        raise SampleReadError(where, f"no image member (one of {IMAGE_EXTS}); members: {sorted(k for k in raw if not k.startswith('__'))}")
    image = decode_image(data, where)
    item_id = str(info.get("id", raw.get("__key__")))
    ref = info.get("image_ref") or {"shard": where}
    kwargs: dict[str, Any] = {}
    if "intrinsics" in info:
        kwargs["intrinsics"] = np.asarray(info["intrinsics"], dtype=np.float32)
    if labeled:
        if "depth.npy" not in raw:
            raise SampleReadError(where, "labeled sample has no depth.npy member")
        depth = decode_npy(raw["depth.npy"], where)
        valid = decode_png(raw["valid.png"], where).astype(bool) if "valid.png" in raw else None
        kwargs.update(depth=depth, depth_kind=info.get("depth_kind", "metric"), valid=valid)
        if "seg.png" in raw:
            kwargs["seg"] = decode_png(raw["seg.png"], where)
    return make_sample(image, source=info.get("source") or source, item_id=item_id, image_ref=ref, where=where, **kwargs)
