"""16-bit PNG depth maps with their scale recorded in a PNG text chunk."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from da_toolkit.data.io import atomic_path

#: PNG text-chunk key holding the JSON ``{"scale", "offset", "kind", "units", "licence", ...}``
TEXT_KEY = "da_toolkit"
#: PNG text-chunk key holding the licence of the model weights as a plain line
LICENCE_KEY = "Licence"
UINT16_MAX = 65535


def encode_png16(depth: np.ndarray, scale: float | None = None) -> tuple[np.ndarray, float, float]:
    """Quantise ``depth (H,W)`` to uint16 so that ``depth ~= value * scale + offset``.

    ``scale=None`` stretches the finite range of the map over 0..65535 (offset = min);
    a given ``scale`` (e.g. 0.001 for millimetres) uses offset 0 and clips to 0..65535.
    Non-finite pixels become 0.
    """
    d = np.asarray(depth, dtype=np.float64)
    finite = np.isfinite(d)
    if scale is None:
        lo = float(d[finite].min()) if finite.any() else 0.0
        hi = float(d[finite].max()) if finite.any() else 0.0
        offset, scale = lo, ((hi - lo) / UINT16_MAX if hi > lo else 1.0)
    else:
        if scale <= 0:
            raise ValueError(f"png16 scale must be > 0, got {scale}")
        offset = 0.0
    q = np.where(finite, np.rint((d - offset) / scale), 0.0)
    return np.clip(q, 0, UINT16_MAX).astype(np.uint16), float(scale), float(offset)


def png_text(chunks: Mapping[str, str]) -> Any:
    """A PIL ``PngInfo`` with one text chunk per item (iTXt, so any Unicode text survives)."""
    from PIL import PngImagePlugin

    pnginfo = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        pnginfo.add_itxt(key, value)
    return pnginfo


def write_png16(
    path: str | os.PathLike[str],
    depth: np.ndarray,
    scale: float | None = None,
    text: Mapping[str, str] | None = None,
    **info: Any,
) -> dict[str, Any]:
    """Write ``depth (H,W)`` as a 16-bit grayscale PNG; returns the recorded metadata.

    ``info`` (e.g. ``kind``, ``units``, ``licence``, ``origin``) joins ``scale`` and ``offset`` in the
    JSON of the ``da_toolkit`` text chunk; ``text`` adds plain text chunks (e.g. ``{"Licence": ...}``).
    """
    from PIL import Image

    q, scale, offset = encode_png16(depth, scale)
    meta = {"scale": scale, "offset": offset, **info}
    pnginfo = png_text({TEXT_KEY: json.dumps(meta), **dict(text or {})})
    with atomic_path(path) as tmp:
        Image.fromarray(q).save(tmp, format="PNG", pnginfo=pnginfo)
    return meta


def read_png16(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a PNG written by :func:`write_png16` -> ``(depth (H,W) float32, metadata)``."""
    from PIL import Image

    with Image.open(path) as img:
        raw = np.array(img)
        text = getattr(img, "text", {}).get(TEXT_KEY)
    if text is None:
        raise ValueError(f"{path}: no {TEXT_KEY!r} text chunk; not a da-toolkit 16-bit depth PNG")
    meta = json.loads(text)
    depth = raw.astype(np.float64) * meta["scale"] + meta["offset"]
    return depth.astype(np.float32), meta
