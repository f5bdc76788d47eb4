"""A model as data: the description written into checkpoints (no model building here).

The description is the recipe schema of a :class:`~da_toolkit.models.depth_model.DepthModel`::

    {"class_path": "da_toolkit.models.depth_model.DepthModel",
     "init_args": {"encoder": {"class_path": ..., "init_args": {...}},
                   "decoder": {"class_path": ..., "init_args": {...}},
                   "weights": None, "encoder_weights": None, "upsample_align_corners": True,
                   "licence": "CC-BY-NC-4.0", "origin": "depth-anything-v2-vitb"}}  # when known

This module only reads modules' recorded ``init_args`` and checks the shape of such dicts;
:mod:`da_toolkit.models.description` builds models from them (it is the public entry point and
re-exports everything here).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = [
    "CHECKPOINT_KEY",
    "DEPTH_MODEL_CLASS_PATH",
    "ModelDescriptionError",
    "check_description",
    "class_path_of",
    "describe_model",
    "description_max_depth",
]

#: Key of the model description in a task's Lightning checkpoint dict.
CHECKPOINT_KEY = "da_toolkit_model"
#: Full class path of :class:`~da_toolkit.models.depth_model.DepthModel`.
DEPTH_MODEL_CLASS_PATH = "da_toolkit.models.depth_model.DepthModel"


class ModelDescriptionError(ValueError):
    """A model description that cannot be written or built; the message names the key."""


def class_path_of(obj: object) -> str:
    """The importable dotted path of ``obj``'s class (``ModelDescriptionError`` for local classes)."""
    cls = type(obj)
    if "<locals>" in cls.__qualname__:
        raise ModelDescriptionError(
            f"{cls.__qualname__} is defined inside a function; a model description needs a class "
            f"importable by its dotted path (define it at module level)"
        )
    return f"{cls.__module__}.{cls.__qualname__}"


def _component(module: nn.Module, key: str) -> dict[str, Any]:
    args = getattr(module, "init_args", None)
    if args is None:
        if type(module).__init__ is nn.Module.__init__:
            args = {}
        else:
            raise ModelDescriptionError(
                f"{key}: {type(module).__qualname__} does not record its init_args; subclass "
                f"da_toolkit's Encoder/Decoder so its constructor arguments are captured"
            )
    out = {"class_path": class_path_of(module), "init_args": dict(args)}
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        bad = [k for k, v in args.items() if not _jsonable(v)]
        raise ModelDescriptionError(
            f"{key}: init_args {bad or list(args)} of {type(module).__qualname__} are not JSON data "
            f"({exc}); constructor arguments must be numbers, strings, booleans, None, lists or dicts"
        ) from None
    return out


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def describe_model(model: nn.Module) -> dict[str, Any]:
    """The description (module docstring) that rebuilds ``model``'s architecture.

    Encoder and decoder get full dotted class paths (plugin classes rebuild wherever their
    package is installed); ``weights`` and ``encoder_weights`` are ``None`` (the tensors travel in
    the file that records the description); ``licence`` and ``origin`` of the weights are recorded
    when the model carries them (:mod:`da_toolkit.models.licence`). JSON-serialisable.
    """
    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
        raise ModelDescriptionError(f"{type(model).__qualname__} has no encoder/decoder modules to describe")
    own = dict(getattr(model, "init_args", None) or {})
    for key in ("licence", "origin"):  # recorded when known (descriptions of unknown models unchanged)
        if own.get(key) is None:
            own.pop(key, None)
    own.update(
        encoder=_component(encoder, "model.encoder"),
        decoder=_component(decoder, "model.decoder"),
        weights=None,
        encoder_weights=None,
        upsample_align_corners=bool(getattr(model, "upsample_align_corners", True)),
    )
    out = {"class_path": class_path_of(model), "init_args": own}
    if not _jsonable(out):
        bad = [k for k, v in own.items() if not _jsonable(v)]
        raise ModelDescriptionError(f"model: init_args {bad} of {type(model).__qualname__} are not JSON data")
    return out


def check_description(value: object, where: str) -> dict[str, Any]:
    """``value`` as a canonical description dict, or ``ModelDescriptionError`` naming ``where``
    and the first key that is missing or of the wrong type (structure only, not the arguments)."""
    if not isinstance(value, Mapping):
        raise ModelDescriptionError(f"{where}: a model description must be a mapping, got {type(value).__name__}")
    if not isinstance(value.get("class_path"), str):
        raise ModelDescriptionError(f"{where}: missing 'class_path' (e.g. {DEPTH_MODEL_CLASS_PATH!r})")
    init = value.get("init_args", {})
    if not isinstance(init, Mapping):
        raise ModelDescriptionError(f"{where}.init_args: must be a mapping, got {type(init).__name__}")
    for part in ("encoder", "decoder"):
        comp = init.get(part)
        if not isinstance(comp, Mapping) or not isinstance(comp.get("class_path"), str):
            raise ModelDescriptionError(f"{where}.init_args.{part}: needs a 'class_path' (and 'init_args')")
        if not isinstance(comp.get("init_args", {}), Mapping):
            raise ModelDescriptionError(f"{where}.init_args.{part}.init_args: must be a mapping")
    return json.loads(json.dumps(value))


def description_max_depth(description: Mapping[str, Any]) -> float | None:
    """``max_depth`` of the decoder in a description (``None``: relative head or not recorded)."""
    value = description.get("init_args", {}).get("decoder", {}).get("init_args", {}).get("max_depth")
    return None if value is None else float(value)
