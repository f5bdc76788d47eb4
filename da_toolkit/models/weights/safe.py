"""Safe reading of raw weights files: safetensors, or pickles through a weights-only unpickler.

This is the only place of the toolkit that calls ``torch.load``. A pickle that would import or
call anything is refused (:class:`UnsafeCheckpointError`) before any of it runs; the data-only
classes Lightning puts next to the weights (hyper-parameters) become inert placeholders.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from da_toolkit.models.weights.errors import UnsafeCheckpointError, WeightsError

__all__ = ["StateDict", "as_state_dict", "is_safetensors", "read_safetensors", "read_torch"]

StateDict = dict[str, torch.Tensor]


def is_safetensors(path: Path) -> bool:
    """True when ``path`` starts like a safetensors file (8-byte header length, then ``{``)."""
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 0


def read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    """Tensors and metadata of a safetensors file (CPU)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta  # noqa: SIM118 - safe_open is not iterable
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: unreadable safetensors file (truncated or corrupt?): {exc}") from exc


#: Data-only classes that Lightning/our tasks put next to the weights (hyper-parameters). They are
#: never imported or constructed: each becomes an inert placeholder (AttributeDict: a plain dict)
#: while loading. Our own dataclasses/enums (task configs) are accepted the same way.
_INERT_DATA_CLASSES = frozenset({
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePath",
    "pathlib.PurePosixPath", "pathlib.PureWindowsPath", "argparse.Namespace",
    "jsonargparse._namespace.Namespace", "jsonargparse.Namespace",
    "lightning.fabric.utilities.data.AttributeDict", "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
})


class _Inert:
    """Stands in for a hyper-parameter object of a checkpoint; holds nothing, runs nothing."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


def _is_our_data_class(name: str) -> bool:
    """True for dataclasses / enums of da_toolkit itself (task configs saved as hyper-parameters)."""
    import dataclasses
    import enum
    import importlib

    if not name.startswith("da_toolkit."):
        return False
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and (dataclasses.is_dataclass(obj) or issubclass(obj, enum.Enum))


def _inert_globals(path: Path) -> list[tuple[type, str]]:
    """Placeholders for the known data-only globals of a zip checkpoint; refuse any other global."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return []
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - corrupt archives are reported by torch.load below
        return []
    refused = [n for n in names if n not in _INERT_DATA_CLASSES and not _is_our_data_class(n)]
    if refused:
        raise UnsafeCheckpointError(
            f"{path}: refused to unpickle: the file references {', '.join(sorted(refused))}, which "
            f"could run code. Only safetensors or weights-only checkpoints are loaded."
        )
    # dict subclasses (AttributeDict) are filled item by item: a plain dict receives them
    return [(dict if n.endswith("AttributeDict") else _Inert, n) for n in names]


def read_torch(path: Path) -> Any:
    """The object of a ``torch.save`` file, read with ``weights_only=True`` (tensors and plain
    containers only; see the module docstring)."""
    inert = _inert_globals(path)
    try:
        with torch.serialization.safe_globals(inert):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported" in text or "allowed global" in text or "not an allowed" in text:
            detail = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), "")
            raise UnsafeCheckpointError(
                f"{path}: refused to unpickle: the file needs objects other than tensors and plain "
                f"containers (it could run code). Only safetensors or weights-only checkpoints are "
                f"loaded. {detail}"
            ) from None
        raise WeightsError(f"{path}: corrupt checkpoint: {text}") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise anything
        raise WeightsError(
            f"{path}: unreadable checkpoint (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from None


def as_state_dict(obj: Any, path: Path) -> tuple[StateDict, bool]:
    """Unwrap ``{'state_dict': ...}`` / ``{'model': ...}`` containers; returns (sd, was_lightning)."""
    lightning = False
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), Mapping):
                lightning = key == "state_dict"
                obj = obj[key]
                break
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: expected a state dict (mapping name -> tensor), got {type(obj).__name__}")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise WeightsError(f"{path}: contains no tensors")
    return sd, lightning
