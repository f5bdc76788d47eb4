"""Building models from presets and from weights files: :func:`load_model` and friends.

Never downloads: weights come from a local path in any format of
:mod:`da_toolkit.models.weights`. A file that records its model (our safetensors, task
``.ckpt`` files, Hugging Face folders) rebuilds it alone (``load_model(path)``); the head kind
and ``max_depth`` a file records always win over a preset's, and an explicit different
``max_depth`` is refused naming the file. So does the weights' ``licence`` / ``origin`` a file
records (:mod:`da_toolkit.models.licence`); a file that records none gets the preset's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.describe import describe_model
from da_toolkit.models.description import (
    build_model,
    preset_description,
    with_overrides,
)
from da_toolkit.models.preset_table import PRESETS
from da_toolkit.models.weights.errors import HeadMismatchError, WeightsError
from da_toolkit.models.weights.formats import LoadedWeights, read_weights
from da_toolkit.models.weights.load import (
    NO_HEAD_RECORDED,
    check_head,
    file_head,
    load_strict,
)

__all__ = ["encoder_from_loaded", "load_model", "model_from_loaded", "model_from_weights"]

def _architecture(
    loaded: LoadedWeights, preset: str | None, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The description to build for ``loaded``: the preset's (with overrides) or the file's,
    with the head the file records."""
    if preset is not None:
        desc = preset_description(preset)
        recorded_init = (loaded.description or {}).get("init_args", {})
        if recorded_init.get("licence") is not None:  # the file's own record wins, as its head does
            desc["init_args"].update(licence=recorded_init["licence"], origin=recorded_init.get("origin"))
    elif loaded.description is not None:
        desc = loaded.description
    elif loaded.format == "lightning":
        raise WeightsError(
            f"{loaded.path}: this checkpoint records no model description (written by an older "
            f"da-toolkit or not by a da-toolkit task); name a preset, or re-save it with the current "
            f"version (load it with its preset and save_weights)"
        )
    else:
        raise WeightsError(
            f"{loaded.path}: {loaded.format} weights do not record the architecture; name a preset "
            f"(e.g. load_model('depth-anything-v2-vits', weights=path) or --preset depth-anything-v2-vits)"
        )
    desc = with_overrides(desc, {k: v for k, v in overrides.items() if k != "max_depth"})
    recorded = file_head(loaded)
    dec_args = desc["init_args"]["decoder"]["init_args"]
    if "max_depth" in overrides:
        wanted = overrides["max_depth"]
        if recorded is not NO_HEAD_RECORDED and (None if wanted is None else float(wanted)) != recorded:
            raise HeadMismatchError(
                f"{loaded.path}: the file records max_depth {recorded} (its head always wins), but "
                f"max_depth={wanted} was asked for; drop the override, use a matching file, or load only "
                f"its encoder (encoder_weights=) to train another head"
            )
        desc = with_overrides(desc, {"max_depth": wanted})
    elif recorded is not NO_HEAD_RECORDED:
        dec_args["max_depth"] = recorded
    return desc


def model_from_loaded(
    loaded: LoadedWeights, preset: str | None = None, **overrides: Any
) -> tuple[DepthModel, LoadedWeights]:
    """The model ``loaded`` describes (or ``preset``'s, the file's head winning), with the weights
    loaded strictly, in eval mode; ``loaded.description`` becomes the built model's description."""
    if loaded.backbone_only:
        raise WeightsError(f"{loaded.path}: a backbone-only ({loaded.format}) checkpoint is not a depth model")
    model = build_model(_architecture(loaded, preset, overrides))
    check_head(model, loaded)
    load_strict(model, loaded.state_dict, loaded.path)
    if loaded.preset is None:
        loaded.preset = preset
    loaded.description = describe_model(model)
    return model.eval(), loaded


def model_from_weights(
    path: str | os.PathLike[str], preset: str | None = None, **overrides: Any
) -> tuple[DepthModel, LoadedWeights]:
    """Build the model a weights file describes and load it (``preset`` for files that do not
    record their architecture, such as official ``.pth``); see :func:`model_from_loaded`."""
    return model_from_loaded(read_weights(path), preset, **overrides)


def encoder_from_loaded(loaded: LoadedWeights, preset: str | None = None) -> tuple[DepthModel, LoadedWeights]:
    """A model of ``preset`` (or the recorded description) whose encoder holds backbone-only
    weights (strict); the decoder keeps its random initialisation. The preset's weights licence
    is not carried (these are not its released weights)."""
    if not loaded.backbone_only:
        raise WeightsError(f"{loaded.path}: not a backbone-only checkpoint ({loaded.format} weights)")
    if preset is not None:
        desc = preset_description(preset)
    elif loaded.description is not None:
        desc = loaded.description
    else:
        raise WeightsError(
            f"{loaded.path}: {loaded.format} backbone weights do not record the architecture; name a "
            f"preset (e.g. --preset depth-anything-v2-vits)"
        )
    # backbone weights are not the preset's released depth weights: its licence does not apply
    desc["init_args"].pop("licence", None)
    desc["init_args"].pop("origin", None)
    model = build_model(desc)
    sd = dict(loaded.state_dict)
    own = model.encoder.state_dict()
    if "mask_token" in own and "mask_token" not in sd:
        sd["mask_token"] = own["mask_token"]
    load_strict(model.encoder, sd, loaded.path)
    if loaded.preset is None:
        loaded.preset = preset
    loaded.description = describe_model(model)
    return model.eval(), loaded


def load_model(
    preset_or_path: str | os.PathLike[str], weights: str | os.PathLike[str] | None = None, **overrides: Any
) -> DepthModel:
    """Build a model from a preset name or from a self-describing weights file; never downloads.

    Args:
        preset_or_path: a name of :data:`~da_toolkit.models.preset_table.PRESETS` (e.g.
            ``"depth-anything-v2-vits"``), or a local file/folder that records its model (our
            safetensors, a task ``.ckpt``, a Hugging Face folder), rebuilt like ``from_pretrained``.
        weights: with a preset: a local weights file or folder in any supported format (official
            ``.pth``, Hugging Face folder, our safetensors, Lightning ``.ckpt``); ``None`` =
            random initialisation. The head kind / ``max_depth`` recorded by the file wins.
        **overrides: constructor arguments of the encoder (``DINOv2Encoder``: ``depth``,
            ``layer_indices``, ...), the decoder (``DPTDecoder``: ``max_depth``, ``use_bn``, ...)
            or the model (``upsample_align_corners``); unknown names raise
            :class:`~da_toolkit.models.describe.ModelDescriptionError`.

    Returns:
        A :class:`DepthModel` in eval mode on the CPU. ``model(x)`` takes ``(B,3,H,W)``
        ImageNet-normalised input (sides multiples of ``model.input_multiple``) and returns
        ``(B,H,W)`` relative disparity or metres (``model.output_kind``).
    """
    name = os.fspath(preset_or_path)
    if name in PRESETS and not isinstance(preset_or_path, os.PathLike):
        if weights is None:
            return build_model(with_overrides(preset_description(name), overrides)).eval()
        return model_from_weights(weights, name, **overrides)[0]
    if Path(name).exists():
        if weights is not None:
            raise ValueError(
                f"load_model({name!r}, weights=...): give either a preset name with weights, or a "
                f"weights file alone"
            )
        return model_from_weights(name, None, **overrides)[0]
    raise FileNotFoundError(
        f"load_model: {name!r} is neither a model preset ({', '.join(PRESETS)}) nor an existing file or folder"
    )
