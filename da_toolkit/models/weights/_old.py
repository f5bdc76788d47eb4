"""Reading and writing model weights, with the format detected from the content.

Readable: official V1/V2 ``.pth`` state dicts (``pretrained.*``, ``depth_head.*``); Hugging Face
folders of ``DepthAnythingForDepthEstimation`` (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``); our checkpoints (safetensors with ``encoder.*``/``decoder.*`` keys and
metadata naming the preset and config); Lightning ``.ckpt`` files of our tasks (``state_dict``
with ``model.``-prefixed keys); DINOv2 backbone-only checkpoints (official, timm, Hugging Face)
for :func:`load_encoder_weights`.

Safety: only safetensors or ``torch.load(..., weights_only=True)``. A pickle that would import
or call anything is refused (:class:`UnsafeCheckpointError`) before any of it runs.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from da_toolkit.models.config import ModelConfig, build_model, model_config
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.hf_config import hf_config_to_model_config, model_config_to_hf_config
from da_toolkit.models.keymaps import (
    dinov2_to_ours_encoder,
    hf_dinov2_to_ours_encoder,
    hf_to_ours,
    official_to_ours,
    ours_to_hf,
)

__all__ = [
    "WeightsError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "LoadedWeights",
    "read_weights",
    "load_weights",
    "load_encoder_weights",
    "model_from_weights",
    "save_weights",
    "save_encoder_weights",
    "save_hf_folder",
    "encoder_from_loaded",
    "model_from_loaded",
    "FORMAT_NAME",
]

#: Value of the ``format`` metadata field of our safetensors checkpoints.
FORMAT_NAME = "da_toolkit"
#: Value of the ``content`` metadata field of our encoder-only files (backbones).
ENCODER_CONTENT = "encoder"
StateDict = dict[str, torch.Tensor]


class WeightsError(ValueError):
    """A weights file that cannot be read or used; the message names the file."""


class UnsafeCheckpointError(WeightsError):
    """A pickle that would run code (import/call objects) was refused without running it."""


class WeightsMismatchError(WeightsError):
    """Weights that do not fit the model: lists missing, unexpected and mis-shaped keys."""

    def __init__(
        self,
        path: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.path, self.missing, self.unexpected, self.mismatched = path, missing, unexpected, mismatched

        def show(items: list[str]) -> str:
            head = ", ".join(items[:20])
            return head + (f", ... ({len(items) - 20} more)" if len(items) > 20 else "")

        parts = [f"weights in {path} do not fit the model:"]
        if missing:
            parts.append(f"  missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            parts.append(f"  unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if mismatched:
            parts.append(
                f"  shape mismatches ({len(mismatched)}): "
                + show([f"{k} file {tuple(a)} vs model {tuple(b)}" for k, a, b in mismatched])
            )
        super().__init__("\n".join(parts))


@dataclass
class LoadedWeights:
    """A state dict in our key names and what was learnt about its source.

    Attributes:
        state_dict: ``encoder.*`` / ``decoder.*`` keys (or encoder keys only for backbones).
        format: detected format name (``official``, ``hf``, ``da_toolkit``, ``lightning``,
            ``dinov2``, ``hf_dinov2``).
        path: the file or folder read.
        config: the model config when the source records one (ours, HF folders), else ``None``.
        preset: the preset name recorded in our checkpoints, else ``None``.
        backbone_only: True for DINOv2 backbone checkpoints (keys without ``encoder.``).
    """

    state_dict: StateDict
    format: str
    path: str
    config: ModelConfig | None = None
    preset: str | None = None
    backbone_only: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


# --- reading raw files ------------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 0


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta
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


def _read_torch(path: Path) -> Any:
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


def _as_state_dict(obj: Any, path: Path) -> tuple[StateDict, bool]:
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


# --- formats ----------------------------------------------------------------------------------


def _strip_model_prefix(sd: Mapping[str, torch.Tensor]) -> StateDict:
    return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}


@dataclass(frozen=True)
class _Format:
    name: str
    matches: Callable[[Mapping[str, torch.Tensor]], bool]
    convert: Callable[[Mapping[str, torch.Tensor]], StateDict]
    backbone_only: bool = False


def _has(prefixes: tuple[str, ...]) -> Callable[[Mapping[str, torch.Tensor]], bool]:
    return lambda sd: any(k.startswith(prefixes) for k in sd)


# Checked in order; the first match decides (HF Dinov2Model keys also start with "encoder.").
_FORMATS: tuple[_Format, ...] = (
    _Format("hf_dinov2", _has(("embeddings.patch_embeddings.", "dinov2.embeddings.")), hf_dinov2_to_ours_encoder, True),
    _Format("da_toolkit", _has(("encoder.", "decoder.")), dict),
    _Format("lightning", _has(("model.encoder.", "model.decoder.")), _strip_model_prefix),
    _Format("official", _has(("pretrained.", "depth_head.")), official_to_ours),
    _Format("hf", _has(("backbone.embeddings.", "neck.", "head.conv")), hf_to_ours),
    _Format("dinov2", lambda sd: "patch_embed.proj.weight" in sd, dinov2_to_ours_encoder, True),
)


def _convert(sd: StateDict, path: Path) -> tuple[_Format, StateDict]:
    for fmt in _FORMATS:
        if fmt.matches(sd):
            try:
                return fmt, fmt.convert(sd)
            except KeyError as exc:
                raise WeightsError(f"{path}: looks like {fmt.name} weights but {exc.args[0]}") from None
    sample = ", ".join(sorted(sd)[:8])
    raise WeightsError(
        f"{path}: unrecognised weights (keys like {sample}); expected official Depth Anything "
        f"(pretrained.*/depth_head.*), Hugging Face, da-toolkit, Lightning or DINOv2 checkpoints"
    )


def _read_sharded(index: Path) -> StateDict:
    """Shards listed by a ``model.safetensors.index.json`` (``weight_map``: key -> file)."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{index}: invalid shard index (expected a 'weight_map'): {exc}") from None
    out: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index.parent / shard
        if not shard_path.is_file():
            raise WeightsError(f"{index}: shard {shard} is missing")
        out.update(_read_safetensors(shard_path)[0])
    missing = sorted(set(weight_map) - set(out))
    if missing:
        raise WeightsError(f"{index}: keys listed but absent from their shards: {', '.join(missing[:10])}")
    return out


def _read_hf_folder(path: Path) -> LoadedWeights:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise WeightsError(f"{path}: a weights folder must hold a Hugging Face config.json")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{cfg_path}: invalid JSON: {exc}") from None
    try:
        config = hf_config_to_model_config(cfg, str(cfg_path))
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    st, pt = path / "model.safetensors", path / "pytorch_model.bin"
    index = path / "model.safetensors.index.json"
    if st.is_file():
        raw, meta = _read_safetensors(st)
        source = st
    elif index.is_file():
        raw, meta, source = _read_sharded(index), {}, index
    elif pt.is_file():
        raw, _ = _as_state_dict(_read_torch(pt), pt)
        meta, source = {}, pt
    else:
        raise WeightsError(
            f"{path}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin next to config.json"
        )
    try:
        sd = hf_to_ours(raw)
    except KeyError as exc:
        raise WeightsError(f"{source}: {exc.args[0]}") from None
    return LoadedWeights(sd, "hf", str(path), config=config, metadata=meta)


def read_weights(path: str | os.PathLike[str]) -> LoadedWeights:
    """Read any supported weights file or folder into our key names.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: a pickle that needs arbitrary objects (never executed).
        WeightsError: truncated/corrupt files, unknown key layouts.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"weights not found: {p}")
    if p.is_dir():
        return _read_hf_folder(p)
    hparams: Mapping[str, Any] = {}
    if _is_safetensors(p):
        raw, meta = _read_safetensors(p)
    else:
        obj = _read_torch(p)
        if isinstance(obj, Mapping) and isinstance(obj.get("hyper_parameters"), Mapping):
            hparams = obj["hyper_parameters"]
        raw, _ = _as_state_dict(obj, p)
        meta = {}
    fmt, sd = _convert(raw, p)
    config = None
    if meta.get("config"):
        try:
            config = ModelConfig.from_json(meta["config"])
        except (ValueError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{p}: invalid 'config' metadata: {exc}") from None
    preset = meta.get("preset") or None
    if fmt.name == "lightning" and config is None:
        preset, config = _config_from_task_hparams(hparams)
    backbone_only = fmt.backbone_only
    if fmt.name == FORMAT_NAME and meta.get("content") == ENCODER_CONTENT:
        # our encoder-only file (``da-toolkit convert`` of a DINOv2 backbone): encoder keys
        if any(not k.startswith("encoder.") for k in sd):
            raise WeightsError(f"{p}: marked encoder-only but holds keys outside 'encoder.'")
        sd = {k[len("encoder."):]: v for k, v in sd.items()}
        backbone_only = True
    return LoadedWeights(
        sd, fmt.name, str(p), config=config, preset=preset, backbone_only=backbone_only, metadata=meta,
    )


def _config_from_task_hparams(hparams: Mapping[str, Any]) -> tuple[str | None, ModelConfig | None]:
    """Preset + overrides recorded by our tasks' hyper-parameters (``preset``, ``model_overrides``)."""
    from da_toolkit.models.presets import PRESETS

    preset, overrides = hparams.get("preset"), hparams.get("model_overrides") or {}
    if not isinstance(preset, str) or preset not in PRESETS or not isinstance(overrides, Mapping):
        return None, None
    try:
        return preset, PRESETS[preset].config.with_overrides(**dict(overrides))
    except TypeError:
        return None, None


# --- loading into modules ---------------------------------------------------------------------


def _load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], path: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in sorted(set(sd) & set(own))
                  if sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(path, missing, unexpected, mismatched)
    module.load_state_dict(dict(sd), strict=True)


def load_weights(model: DepthModel, path: str | os.PathLike[str]) -> LoadedWeights:
    """Load a full checkpoint (any supported format) into ``model`` (strict).

    Raises :class:`WeightsMismatchError` (naming the file, listing missing, unexpected and
    mis-shaped keys) when the weights do not fit, and the errors of :func:`read_weights`.
    """
    loaded = read_weights(path)
    if loaded.backbone_only:
        raise WeightsError(
            f"{path}: a backbone-only ({loaded.format}) checkpoint has no decoder; "
            f"use load_encoder_weights(model.encoder, path)"
        )
    _load_strict(model, loaded.state_dict, str(path))
    return loaded


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike[str]) -> LoadedWeights:
    """Initialise an encoder from a DINOv2 backbone checkpoint or the encoder part of a full one.

    A checkpoint without ``mask_token`` (timm) keeps the encoder's own (it is unused).
    """
    loaded = read_weights(path)
    sd = dict(loaded.state_dict)
    if not loaded.backbone_only:
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    own = encoder.state_dict()
    if "mask_token" in own and "mask_token" not in sd:
        sd["mask_token"] = own["mask_token"]
    _load_strict(encoder, sd, str(path))
    return loaded


def model_from_weights(path: str | os.PathLike[str], preset: str | None = None) -> tuple[DepthModel, LoadedWeights]:
    """Build the model a checkpoint describes and load it.

    The architecture comes from ``preset`` when given, else from the checkpoint (our metadata,
    HF ``config.json``, the ``preset``/``model_overrides`` hyper-parameters of our Lightning
    tasks); official ``.pth`` files do not record it, so they need ``preset``.
    """
    return model_from_loaded(read_weights(path), preset)


def _config_for(loaded: LoadedWeights, preset: str | None) -> ModelConfig:
    if preset is not None:
        from da_toolkit.models.presets import get_preset

        return get_preset(preset).config
    if loaded.config is not None:
        return loaded.config
    raise WeightsError(
        f"{loaded.path}: {loaded.format} weights do not record the architecture; name a preset "
        f"(e.g. --preset depth-anything-v2-vits)"
    )


def model_from_loaded(loaded: LoadedWeights, preset: str | None = None) -> tuple[DepthModel, LoadedWeights]:
    """:func:`model_from_weights` for weights already read with :func:`read_weights`."""
    config = _config_for(loaded, preset)
    if loaded.backbone_only:
        raise WeightsError(f"{loaded.path}: a backbone-only ({loaded.format}) checkpoint is not a depth model")
    model = build_model(config)
    _load_strict(model, loaded.state_dict, loaded.path)
    if loaded.preset is None:
        loaded.preset = preset
    loaded.config = config
    return model.eval(), loaded


def encoder_from_loaded(loaded: LoadedWeights, preset: str | None = None) -> tuple[DepthModel, LoadedWeights]:
    """A model of ``preset`` (or the recorded config) whose encoder holds backbone-only weights
    (strict, as :func:`load_encoder_weights`); the decoder keeps its random initialisation."""
    config = _config_for(loaded, preset)
    if not loaded.backbone_only:
        raise WeightsError(f"{loaded.path}: not a backbone-only checkpoint ({loaded.format} weights)")
    model = build_model(config)
    sd = dict(loaded.state_dict)
    own = model.encoder.state_dict()
    if "mask_token" in own and "mask_token" not in sd:
        sd["mask_token"] = own["mask_token"]
    _load_strict(model.encoder, sd, loaded.path)
    if loaded.preset is None:
        loaded.preset = preset
    loaded.config = config
    return model.eval(), loaded


# --- writing ----------------------------------------------------------------------------------


def _atomic_save_file(tensors: Mapping[str, torch.Tensor], dest: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_weights(
    model: DepthModel,
    path: str | os.PathLike[str],
    preset: str | None = None,
    config: ModelConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write ``model`` as safetensors in our format (atomic).

    Metadata: ``format`` = ``da_toolkit``, ``preset`` (if known) and ``config`` (JSON
    :class:`ModelConfig`, from ``config`` or the model) so the file rebuilds its model alone.
    """
    cfg = config if config is not None else model_config(model)
    meta = {"format": FORMAT_NAME, "format_version": "1", "config": cfg.to_json(),
            "output_kind": model.output_kind}
    if preset:
        meta["preset"] = preset
    sd = dict(state_dict) if state_dict is not None else model.state_dict()
    _atomic_save_file(sd, Path(path), meta)


def save_encoder_weights(
    model: DepthModel,
    path: str | os.PathLike[str],
    preset: str | None = None,
    config: ModelConfig | None = None,
) -> None:
    """Write only ``model.encoder`` as safetensors in our format (atomic), keys ``encoder.*``,
    metadata ``content`` = ``encoder``: a backbone for :func:`load_encoder_weights` (and
    ``PresetModel(encoder_weights=...)``); :func:`load_weights` refuses it as backbone-only."""
    cfg = config if config is not None else model_config(model)
    meta = {"format": FORMAT_NAME, "format_version": "1", "config": cfg.to_json(), "content": ENCODER_CONTENT}
    if preset:
        meta["preset"] = preset
    _atomic_save_file({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}, Path(path), meta)


def save_hf_folder(model: DepthModel, folder: str | os.PathLike[str], config: ModelConfig | None = None) -> None:
    """Write ``model`` as a Hugging Face ``DepthAnythingForDepthEstimation`` folder
    (``config.json`` + ``model.safetensors`` with Hub key names), each file atomically."""
    cfg = config if config is not None else model_config(model)
    hf_cfg = model_config_to_hf_config(cfg)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save_file(ours_to_hf(model.state_dict()), out / "model.safetensors", {"format": "pt"})
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", suffix=".tmp", dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump(hf_cfg, f, indent=2)
    os.replace(tmp, out / "config.json")
