"""Base class and sample helpers shared by every data source.

A sample is a dict (see ``docs/architecture.md``): ``image`` uint8 ``(H, W, 3)`` RGB; optional
``depth`` float32 ``(H, W)`` with ``depth_kind`` (``"metric"`` metres, ``"disparity"`` or
``"relative"``) and ``valid`` bool ``(H, W)``; optional ``seg`` int64 ``(H, W)`` (255 = ignore)
and ``intrinsics`` float32 ``(3, 3)`` in pixels; and ``meta`` with ``source``, ``id`` and
``image_ref`` (how to get the image back, used by the pseudo-label store).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch.utils.data import Dataset

from da_toolkit.data.errors import SampleReadError

DepthKind = Literal["metric", "disparity", "relative"]
DEPTH_KINDS: tuple[str, ...] = ("metric", "disparity", "relative")


class DataSource(Dataset):
    """Map-style dataset of sample dicts. Subclasses set ``name`` and implement both methods."""

    name: str = "source"

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{type(self).__name__} index {index} out of range for length {n}")
        return index % n


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole intrinsics ``K`` float32 ``(3, 3)`` in pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float32)


def make_sample(
    image: np.ndarray,
    *,
    source: str,
    item_id: str,
    image_ref: dict[str, Any],
    depth: np.ndarray | None = None,
    depth_kind: DepthKind | None = None,
    valid: np.ndarray | None = None,
    seg: np.ndarray | None = None,
    intrinsics: np.ndarray | None = None,
    where: str | Path | None = None,
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> dict[str, Any]:
    """Assemble and check a sample dict.

    Non-finite depth values are marked invalid (and set to 0); with ``min_depth``/``max_depth``
    (units of ``depth_kind``) values outside the range are marked invalid too, as are
    non-positive metric depths. Depth of another size than the image is an error.

    Raises:
        SampleReadError: mismatched sizes, wrong dtype/shape or unknown depth kind; the message
            names ``where`` (the depth file) or the item id.
    """
    where = str(where) if where is not None else f"{source}:{item_id}"
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise SampleReadError(where, f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    sample: dict[str, Any] = {
        "image": image,
        "meta": {"source": source, "id": item_id, "image_ref": image_ref},
    }
    height, width = image.shape[:2]
    if depth is not None:
        if depth_kind not in DEPTH_KINDS:
            raise SampleReadError(where, f"depth_kind {depth_kind!r}, expected one of {DEPTH_KINDS}")
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim == 3 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.shape != (height, width):
            raise SampleReadError(where, f"depth is {depth.shape[1]}x{depth.shape[0]} but the image is {width}x{height}")
        ok = np.isfinite(depth)
        if valid is not None:
            valid = np.asarray(valid, dtype=bool)
            if valid.shape != (height, width):
                raise SampleReadError(where, f"valid mask is {valid.shape}, expected {(height, width)}")
            ok &= valid
        if depth_kind == "metric":
            ok &= depth > 0
        if min_depth is not None:
            ok &= depth >= min_depth
        if max_depth is not None:
            ok &= depth <= max_depth
        sample["depth"] = np.where(ok, depth, np.float32(0.0)).astype(np.float32)
        sample["depth_kind"] = depth_kind
        sample["valid"] = ok
    if seg is not None:
        seg = np.asarray(seg).astype(np.int64)
        if seg.shape != (height, width):
            raise SampleReadError(where, f"seg is {seg.shape}, expected {(height, width)}")
        sample["seg"] = seg
    if intrinsics is not None:
        sample["intrinsics"] = np.asarray(intrinsics, dtype=np.float32).reshape(3, 3)
    return sample


def _plain(value: Any) -> Any:
    """Config value -> JSON-able (dataclasses become dicts, paths strings, tuples lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "class_path": f"{type(value).__module__}.{type(value).__qualname__}",
            "init_args": {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def source_config(obj: object, init_args: dict[str, Any]) -> dict[str, Any]:
    """``{"class_path", "init_args"}`` config of ``obj`` (JSON-able), inverse of :func:`instantiate`."""
    config = {"class_path": f"{type(obj).__module__}.{type(obj).__qualname__}", "init_args": _plain(init_args)}
    json.dumps(config)  # fail early if something is not serialisable
    return config


def instantiate(config: Any) -> Any:
    """Build objects from nested ``{"class_path", "init_args"}`` dicts (other values pass through)."""
    if isinstance(config, dict) and "class_path" in config:
        module_name, _, attr = str(config["class_path"]).rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ValueError(f"cannot import class_path {config['class_path']!r}: {exc}") from None
        kwargs = {k: instantiate(v) for k, v in dict(config.get("init_args") or {}).items()}
        return cls(**kwargs)
    if isinstance(config, list):
        return [instantiate(v) for v in config]
    return config
