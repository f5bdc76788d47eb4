"""Safe reading of raw weights files: safetensors, or pickles through a weights-only unpickler.

This is the only place of the toolkit that calls ``torch.load``. A pickle that would import or
call anything is refused (:class:`UnsafeCheckpointError`) before any of it runs; the data-only
classes Lightning puts next to the weights (hyper-parameters) become inert placeholders.

Only a file whose pickle actually references a disallowed global is called unsafe (found by a
static scan of its opcodes, nothing executed); any other unreadable file - random bytes, a
truncated archive - is "corrupt or not a checkpoint" (:class:`WeightsError`). Before anything of
a zip checkpoint is read, :func:`check_torch_archive` refuses compressed records (``torch.save``
never writes them: a zip bomb would otherwise be inflated in full) and records whose size is not
that of the storage the pickle declares for them.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import zipfile
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


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED_RE = re.compile(rf"{_IDENT}(\.{_IDENT})*")
_GLOBAL_IN_MESSAGE_RE = re.compile(rf"GLOBAL ({_IDENT}(?:\.{_IDENT})+)")
#: string-pushing opcodes (their argument may be a module or name for STACK_GLOBAL)
_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                         "BINSTRING", "SHORT_BINSTRING"})


def _is_name(text: str) -> bool:
    return bool(_DOTTED_RE.fullmatch(text))


def referenced_globals(stream: io.BufferedIOBase | io.BytesIO, max_pickles: int = 4) -> set[str]:
    """Dotted names of the globals the pickle(s) at ``stream`` reference (``GLOBAL``, ``INST``,
    ``STACK_GLOBAL``), by a static opcode scan; nothing is imported or run.

    Scans up to ``max_pickles`` consecutive pickles (a legacy ``torch.save`` file holds four
    before its raw tensor bytes) and stops quietly at the first byte that is not a pickle. Names
    that are not Python identifiers (random bytes that happen to decode as ``GLOBAL``) are ignored.
    """
    import warnings

    found: set[str] = set()
    for _ in range(max_pickles):
        strings: list[str] = []  # strings pushed so far (module/name candidates of STACK_GLOBAL)
        memo: dict[int, str] = {}
        last_was_string = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pickletools warns on odd escapes in garbage
                for op, arg, _pos in pickletools.genops(stream):
                    was_string, last_was_string = last_was_string, False
                    if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                        module, _, name = arg.partition(" ")
                        if _is_name(module) and _is_name(name):
                            found.add(f"{module}.{name}")
                    elif op.name == "STACK_GLOBAL":
                        if len(strings) >= 2 and _is_name(strings[-2]) and _is_name(strings[-1]):
                            found.add(f"{strings[-2]}.{strings[-1]}")
                    elif op.name in _STRING_OPS and isinstance(arg, (str, bytes)):
                        strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
                        last_was_string = True
                    elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT") and was_string:
                        memo[len(memo) if op.name == "MEMOIZE" else int(arg)] = strings[-1]
                        last_was_string = True
                    elif op.name in ("GET", "BINGET", "LONG_BINGET") and int(arg) in memo:
                        strings.append(memo[int(arg)])
                        last_was_string = True
        except Exception:  # noqa: BLE001 - not (or no longer) a pickle: stop scanning
            return found
    return found


def _disallowed(names: set[str]) -> list[str]:
    from torch import _weights_only_unpickler as wou

    allowed = set(wou._get_allowed_globals()) | set(wou._get_user_allowed_globals())
    return sorted(n for n in names if n not in allowed and n not in _INERT_DATA_CLASSES and not _is_our_data_class(n))


def _unsafe(path: Path, refused: list[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused to unpickle: the file references {', '.join(refused)}, which could run "
        f"code. Only safetensors or weights-only checkpoints are loaded."
    )


def _archive_prefix(names: list[str], path: Path) -> str:
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise WeightsError(f"{path}: corrupt or not a checkpoint (a zip archive without one <name>/data.pkl record)")
    return pickles[0][: -len("data.pkl")]


def _declared_storage_bytes(archive: zipfile.ZipFile, prefix: str, inert: list[tuple[type, str]]) -> dict[str, int] | None:
    """Storage key -> bytes as declared by the archive's ``data.pkl``, from a weights-only unpickle
    whose storages are allocation-free (``meta``) stand-ins; ``None`` if it cannot be unpickled
    (``torch.load`` then reports why)."""
    from torch import _weights_only_unpickler as wou

    declared: dict[str, int] = {}

    def persistent_load(pid: object) -> object:
        if not isinstance(pid, tuple) or len(pid) != 5:
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:]
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else storage_type.dtype
        nbytes = int(numel) * torch._utils._element_size(dtype)
        declared[str(key)] = nbytes
        return torch.storage.TypedStorage(
            wrap_storage=torch.UntypedStorage(nbytes, device="meta"), dtype=dtype, _internal=True
        )

    try:
        with torch.serialization.safe_globals(inert):
            unpickler = wou.Unpickler(io.BytesIO(archive.read(f"{prefix}data.pkl")), encoding="utf-8")
            unpickler.persistent_load = persistent_load
            unpickler.load()
    except Exception:  # noqa: BLE001 - reported by torch.load with its own message
        return None
    return declared


def check_torch_archive(path: Path) -> None:
    """Refuse a zip ``torch.save`` file that would make ``torch.load`` read more than it declares.

    Checked from the zip directory and the (small) pickle only, before any record is inflated:
    no record may be compressed (``torch.save`` stores them; a compressed one is a zip bomb or
    not ours), and each tensor record must have exactly the size of the storage ``data.pkl``
    declares for it. Non-zip files pass unchanged.

    Raises:
        WeightsError: naming the file, the record and the sizes.
        UnsafeCheckpointError: the pickle references a disallowed global (nothing was run).
    """
    _check_archive(path)


def _check_archive(path: Path) -> list[tuple[type, str]]:
    """:func:`check_torch_archive`; returns the inert placeholders of the archive's globals."""
    if not zipfile.is_zipfile(path):
        return _inert_globals(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            for info in infos:  # first of all: nothing below may inflate a record
                if info.compress_type != zipfile.ZIP_STORED:
                    raise WeightsError(
                        f"{path}: refused: record {info.filename} is compressed ({info.compress_size} bytes "
                        f"that inflate to {info.file_size}); torch.save never compresses records, so this "
                        f"is not a plain checkpoint (possibly a zip bomb)"
                    )
            prefix = _archive_prefix([i.filename for i in infos], path)
            inert = _inert_globals(path)  # refuses disallowed globals (static scan of data.pkl)
            declared = _declared_storage_bytes(archive, prefix, inert)
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{path}: corrupt or not a checkpoint (bad zip archive: {exc})") from None
    if declared is None:
        return inert
    sizes = {i.filename: i.file_size for i in infos}
    for key, nbytes in sorted(declared.items()):
        name = f"{prefix}data/{key}"
        if name not in sizes:
            raise WeightsError(f"{path}: corrupt checkpoint: the record {name} of a declared storage is missing")
        if sizes[name] != nbytes:
            raise WeightsError(
                f"{path}: refused: record {name} holds {sizes[name]} bytes but its storage declares "
                f"{nbytes} bytes; a torch.save file never differs (corrupt or crafted)"
            )
    return inert


def read_torch(path: Path) -> Any:
    """The object of a ``torch.save`` file, read with ``weights_only=True`` (tensors and plain
    containers only; see the module docstring).

    Raises:
        UnsafeCheckpointError: the pickle references a disallowed global (nothing was run).
        WeightsError: anything else unreadable ("corrupt or not a checkpoint"), or an archive
            refused by :func:`check_torch_archive`.
    """
    inert = _check_archive(path)
    if not zipfile.is_zipfile(path):
        with path.open("rb") as handle:
            refused = _disallowed(referenced_globals(handle))
        if refused:
            raise _unsafe(path, refused)
    try:
        with torch.serialization.safe_globals(inert):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        named = [m for m in _GLOBAL_IN_MESSAGE_RE.findall(str(exc)) if _disallowed({m})]
        if named:  # torch met a global the static scan did not see
            raise _unsafe(path, sorted(set(named))) from None
        raise WeightsError(f"{path}: corrupt or not a checkpoint (the unpickler stopped: {_cause(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - garbage bytes make the unpickler raise anything
        raise WeightsError(
            f"{path}: corrupt or not a checkpoint (truncated?): {type(exc).__name__}: {_cause(exc)}"
        ) from None


def _cause(exc: BaseException) -> str:
    """The first line of a load error that is not torch's generic advice (never ``weights_only=False``)."""
    advice = ("weights only load failed", "weights_only", "check the documentation", "please file an issue")
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if not any(a in ln.lower() for a in advice)]
    return (causes[0] if causes else type(exc).__name__)[:200]


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
