"""Writing our safetensors (self-describing) and Hugging Face folders, atomically."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from da_toolkit.models.describe import check_description, describe_model
from da_toolkit.models.hf_config import description_to_hf_config
from da_toolkit.models.keymaps import ours_to_hf
from da_toolkit.models.weights.formats import (
    ENCODER_CONTENT,
    FORMAT_NAME,
    MODEL_METADATA_KEY,
)

__all__ = ["FORMAT_VERSION", "save_backbone", "save_encoder_weights", "save_hf_folder", "save_weights"]

#: ``format_version`` metadata of the files written here (1: ``config`` metadata, 2: ``model``).
FORMAT_VERSION = "2"


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


def _metadata(model: nn.Module, description: Mapping[str, Any] | None, preset: str | None) -> dict[str, str]:
    desc = check_description(description, "description") if description is not None else describe_model(model)
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            MODEL_METADATA_KEY: json.dumps(desc, sort_keys=True)}
    if preset:
        meta["preset"] = preset
    return meta


def save_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    preset: str | None = None,
    description: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write ``model`` as safetensors in our format (atomic), self-describing.

    Metadata: ``format`` = ``da_toolkit``, ``format_version``, ``model`` = the JSON model
    description (``description``, default :func:`~da_toolkit.models.describe.describe_model` of
    ``model``) so that ``load_model(path)`` rebuilds it alone, ``output_kind`` and ``preset``
    (informative, if given). ``config`` is the former name of ``description``.
    """
    meta = _metadata(model, description if description is not None else config, preset)
    meta["output_kind"] = str(getattr(model, "output_kind", "disparity"))
    sd = dict(state_dict) if state_dict is not None else model.state_dict()
    _atomic_save_file(sd, Path(path), meta)


def save_encoder_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    preset: str | None = None,
    description: Mapping[str, Any] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write only ``model.encoder`` as safetensors in our format (atomic), keys ``encoder.*``,
    metadata ``content`` = ``encoder`` (plus the description of the whole model): a backbone for
    ``load_encoder_weights`` / ``encoder_weights=``; ``load_weights`` refuses it as backbone-only."""
    meta = _metadata(model, description if description is not None else config, preset)
    meta["content"] = ENCODER_CONTENT
    _atomic_save_file({f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}, Path(path), meta)


def save_hf_folder(
    model: nn.Module, folder: str | os.PathLike[str], description: Mapping[str, Any] | None = None
) -> None:
    """Write ``model`` as a Hugging Face ``DepthAnythingForDepthEstimation`` folder
    (``config.json`` + ``model.safetensors`` with Hub key names), each file atomically."""
    desc = description if description is not None else describe_model(model)
    hf_cfg = description_to_hf_config(desc)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save_file(ours_to_hf(model.state_dict()), out / "model.safetensors", {"format": "pt"})
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", suffix=".tmp", dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump(hf_cfg, f, indent=2)
    os.replace(tmp, out / "config.json")


def save_backbone(encoder: nn.Module, path: str | os.PathLike[str]) -> None:
    """Write an encoder alone (no depth decoder exists yet, e.g. after semantic pretraining) as
    safetensors in our encoder-only format (atomic): keys ``encoder.*``, metadata ``content`` =
    ``encoder`` and ``encoder`` = the JSON ``{class_path, init_args}`` of the encoder. Read by
    ``load_encoder_weights`` / ``encoder_weights=`` / ``frozen_encoder_weights=``."""
    from da_toolkit.models.describe import class_path_of

    component = {"class_path": class_path_of(encoder), "init_args": dict(getattr(encoder, "init_args", None) or {})}
    meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "content": ENCODER_CONTENT,
            "encoder": json.dumps(component, sort_keys=True)}
    _atomic_save_file({f"encoder.{k}": v for k, v in encoder.state_dict().items()}, Path(path), meta)
