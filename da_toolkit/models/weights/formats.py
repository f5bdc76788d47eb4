"""Detecting the format of a weights file or folder and reading it into our key names.

Readable: official V1/V2 ``.pth`` state dicts (``pretrained.*``, ``depth_head.*``); Hugging Face
folders of ``DepthAnythingForDepthEstimation`` (``config.json`` + ``model.safetensors``, sharded
safetensors or ``pytorch_model.bin``); our safetensors (``encoder.*``/``decoder.*`` keys, the
model description in metadata ``model``); Lightning ``.ckpt`` files of our tasks (``state_dict``
with ``model.``-prefixed keys, the description under
:data:`~da_toolkit.models.describe.CHECKPOINT_KEY`); DINOv2 backbone-only checkpoints
(official, timm, Hugging Face) for encoders. Raw files are read by :mod:`.safe` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from da_toolkit.models.describe import (
    CHECKPOINT_KEY,
    DEPTH_MODEL_CLASS_PATH,
    ModelDescriptionError,
    check_description,
)
from da_toolkit.models.hf_config import hf_config_to_description
from da_toolkit.models.keymaps import (
    dinov2_to_ours_encoder,
    hf_dinov2_to_ours_encoder,
    hf_to_ours,
    official_to_ours,
)
from da_toolkit.models.weights.errors import WeightsError
from da_toolkit.models.weights.hf_check import (
    check_hf_config_shapes,
    safetensors_shapes,
)
from da_toolkit.models.weights.safe import (
    StateDict,
    as_state_dict,
    is_safetensors,
    read_safetensors,
    read_torch,
)

__all__ = ["ENCODER_CONTENT", "FORMAT_NAME", "MODEL_METADATA_KEY", "LoadedWeights", "read_weights"]

#: Value of the ``format`` metadata field of our safetensors checkpoints.
FORMAT_NAME = "da_toolkit"
#: Value of the ``content`` metadata field of our encoder-only files (backbones).
ENCODER_CONTENT = "encoder"
#: Metadata key of our safetensors holding the model description (JSON).
MODEL_METADATA_KEY = "model"


@dataclass
class LoadedWeights:
    """A state dict in our key names and what was learnt about its source.

    Attributes:
        state_dict: ``encoder.*`` / ``decoder.*`` keys (or encoder keys only for backbones).
        format: detected format name (``official``, ``hf``, ``da_toolkit``, ``lightning``,
            ``dinov2``, ``hf_dinov2``).
        path: the file or folder read.
        description: the model description the source records (ours, task checkpoints, HF
            folders), else ``None`` (official ``.pth``, backbones of others).
        preset: the preset name our safetensors record (informative only), else ``None``.
        backbone_only: True for encoder-only checkpoints (keys without ``encoder.``).
        metadata: the safetensors metadata (empty for pickles).
    """

    state_dict: StateDict
    format: str
    path: str
    description: dict[str, Any] | None = None
    preset: str | None = None
    backbone_only: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> dict[str, Any] | None:
        """Former name of :attr:`description`."""
        return self.description


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
        out.update(read_safetensors(shard_path)[0])
    missing = sorted(set(weight_map) - set(out))
    if missing:
        raise WeightsError(f"{index}: keys listed but absent from their shards: {', '.join(missing[:10])}")
    return out


_ST_NAME = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _sharded_shapes(index: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Header shapes of every shard a ``model.safetensors.index.json`` lists (no tensor data read)."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{index}: invalid shard index (expected a 'weight_map'): {exc}") from None
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for shard in files:
        shard_path = index.parent / shard
        if not shard_path.is_file():
            raise WeightsError(f"{index}: shard {shard} is missing")
        out.update(safetensors_shapes(shard_path))
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
        description = hf_config_to_description(cfg, str(cfg_path))
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    st, pt = path / "model.safetensors", path / "pytorch_model.bin"
    index = path / "model.safetensors.index.json"
    # the config's architecture is checked against the weights' shapes before anything is built
    if st.is_file():
        check_hf_config_shapes(cfg, description, safetensors_shapes(st), cfg_path, st)
        raw, meta = read_safetensors(st)
        source = st
    elif index.is_file():
        check_hf_config_shapes(cfg, description, _sharded_shapes(index), cfg_path, index)
        raw, meta, source = _read_sharded(index), {}, index
    elif pt.is_file():
        raw, _ = as_state_dict(read_torch(pt), pt)
        meta, source = {}, pt
        shapes = {k: (tuple(v.shape), _ST_NAME.get(v.dtype, "F32")) for k, v in raw.items()}
        check_hf_config_shapes(cfg, description, shapes, cfg_path, pt)
    else:
        raise WeightsError(
            f"{path}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin next to config.json"
        )
    try:
        sd = hf_to_ours(raw)
    except KeyError as exc:
        raise WeightsError(f"{source}: {exc.args[0]}") from None
    return LoadedWeights(sd, "hf", str(path), description=description, metadata=meta)


def _legacy_config(text: str, path: Path) -> dict[str, Any]:
    """The description equivalent to the ``config`` metadata of format-version-1 files
    (registered names + argument dicts)."""
    try:
        data = json.loads(text)
        enc, dec = data["encoder"], data["decoder"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{path}: invalid 'config' metadata: {exc}") from None
    return {
        "class_path": DEPTH_MODEL_CLASS_PATH,
        "init_args": {
            "encoder": {"class_path": enc, "init_args": dict(data.get("encoder_args") or {})},
            "decoder": {"class_path": dec, "init_args": dict(data.get("decoder_args") or {})},
            "weights": None,
            "encoder_weights": None,
        },
    }


def _metadata_description(meta: Mapping[str, str], path: Path) -> dict[str, Any] | None:
    text = meta.get(MODEL_METADATA_KEY)
    if text:
        try:
            return check_description(json.loads(text), f"{path}: metadata '{MODEL_METADATA_KEY}'")
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path}: metadata '{MODEL_METADATA_KEY}' is not JSON: {exc}") from None
        except ModelDescriptionError as exc:
            raise WeightsError(str(exc)) from None
    if meta.get("config"):
        return _legacy_config(meta["config"], path)
    return None


def read_weights(path: str | os.PathLike[str]) -> LoadedWeights:
    """Read any supported weights file or folder into our key names (and its description).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeCheckpointError: a pickle that needs arbitrary objects (never executed).
        WeightsError: truncated/corrupt files, unknown key layouts, invalid recorded descriptions.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"weights not found: {p}")
    if p.is_dir():
        return _read_hf_folder(p)
    description: dict[str, Any] | None = None
    if is_safetensors(p):
        raw, meta = read_safetensors(p)
        description = _metadata_description(meta, p)
    else:
        obj = read_torch(p)
        raw, _ = as_state_dict(obj, p)
        meta = {}
        if isinstance(obj, Mapping) and obj.get(CHECKPOINT_KEY) is not None:
            try:
                description = check_description(obj[CHECKPOINT_KEY], f"{p}: {CHECKPOINT_KEY}")
            except ModelDescriptionError as exc:
                raise WeightsError(str(exc)) from None
    fmt, sd = _convert(raw, p)
    backbone_only = fmt.backbone_only
    if fmt.name == FORMAT_NAME and meta.get("content") == ENCODER_CONTENT:
        # our encoder-only file (``da-toolkit convert`` of a backbone): encoder keys
        if any(not k.startswith("encoder.") for k in sd):
            raise WeightsError(f"{p}: marked encoder-only but holds keys outside 'encoder.'")
        sd = {k[len("encoder."):]: v for k, v in sd.items()}
        backbone_only = True
    return LoadedWeights(
        sd, fmt.name, str(p), description=description, preset=meta.get("preset") or None,
        backbone_only=backbone_only, metadata=meta,
    )
