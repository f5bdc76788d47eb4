"""One model description: describe a model as data, expand the short forms, build it back.

The canonical form (what recipes give, what ``--print_config`` shows, what checkpoints record)::

    class_path: da_toolkit.models.depth_model.DepthModel     # `DepthModel` resolves too
    init_args:
      encoder: {class_path: dinov2, init_args: {embed_dim: 384, depth: 12, ...}}
      decoder: {class_path: dpt, init_args: {features: 64, out_channels: [...], max_depth: null}}
      weights: null                 # full-model weights file, loaded at construction
      encoder_weights: null         # encoder-only file, loaded after `weights`
      upsample_align_corners: true  # post-processing of the release (V1 presets: false)
      licence: CC-BY-NC-4.0         # of the weights (presets fill it in; absent = unknown)
      origin: depth-anything-v2-vitb

Encoder and decoder ``class_path`` values are registered names (``dinov2``, ``dpt``, a
plugin's name) or dotted class paths. Short forms that :func:`expand_model` turns into it: a
preset name (``"tiny"``, ``"depth-anything-v2-vits"``), or ``{preset: NAME, weights: ...,
encoder_weights: ..., upsample_align_corners: ..., licence: ..., origin: ..., encoder: {init_args
overrides}, decoder: {...}}``. A preset's ``licence`` is that of its released weights; a model
trained from other weights (e.g. only a DINOv2 encoder) states its own with ``licence:``.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import re
from argparse import ArgumentError
from collections.abc import Mapping
from typing import Any

from da_toolkit.models.decoders.base import Decoder
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.describe import (
    CHECKPOINT_KEY,
    DEPTH_MODEL_CLASS_PATH,
    ModelDescriptionError,
    check_description,
    describe_model,
)
from da_toolkit.models.encoders.base import Encoder
from da_toolkit.models.preset_table import PRESETS
from da_toolkit.plugins import UnknownComponentError, get_component

__all__ = [
    "CHECKPOINT_KEY",
    "ModelDescriptionError",
    "build_model",
    "describe_model",
    "expand_model",
    "preset_description",
    "resolve_description",
    "with_overrides",
]

_PART_KINDS = {"encoder": ("encoders", Encoder), "decoder": ("decoders", Decoder)}
_SHORT_KEYS = ("weights", "encoder_weights", "upsample_align_corners", "licence", "origin")


def preset_description(name: str) -> dict[str, Any]:
    """The canonical description of the preset ``name`` (a fresh copy)."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ModelDescriptionError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")
    return preset.description()


def expand_model(value: object, where: str = "model") -> dict[str, Any]:
    """The canonical description for a short form (module docstring) or a canonical one.

    Raises ``ModelDescriptionError`` naming ``where`` and the offending key.
    """
    if isinstance(value, str):
        return preset_description(value)
    if not isinstance(value, Mapping):
        raise ModelDescriptionError(
            f"{where}: expected a preset name, {{preset: ...}} or {{class_path, init_args}}, got {type(value).__name__}"
        )
    if "preset" not in value:
        return check_description(value, where)
    unknown = sorted(set(value) - {"preset", "encoder", "decoder", *_SHORT_KEYS})
    if unknown:
        raise ModelDescriptionError(
            f"{where}.{unknown[0]}: not a key of the preset form (preset, weights, encoder_weights, "
            f"upsample_align_corners, licence, origin, encoder, decoder)"
        )
    if not isinstance(value["preset"], str):
        raise ModelDescriptionError(f"{where}.preset: must be a preset name, got {value['preset']!r}")
    desc = preset_description(value["preset"])
    init = desc["init_args"]
    for key in _SHORT_KEYS:
        if key in value:
            init[key] = value[key]
    for part in ("encoder", "decoder"):
        given = value.get(part)
        if given is None:
            continue
        if not isinstance(given, Mapping):
            raise ModelDescriptionError(f"{where}.{part}: must be a mapping of {part} arguments")
        if "class_path" in given:  # a whole component replaces the preset's
            init[part] = {"class_path": given["class_path"], "init_args": dict(given.get("init_args") or {})}
        else:
            args = given.get("init_args", given)
            if not isinstance(args, Mapping):
                raise ModelDescriptionError(f"{where}.{part}.init_args: must be a mapping")
            init[part]["init_args"].update(copy.deepcopy(dict(args)))
    return desc


def _component_class(part: str, class_path: str, where: str) -> type:
    kind, base = _PART_KINDS[part]
    if "." not in class_path:
        try:
            return get_component(kind, class_path)
        except UnknownComponentError as exc:
            raise ModelDescriptionError(f"{where}.init_args.{part}.class_path: {exc}") from None
    module, _, attr = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelDescriptionError(
            f"{where}.init_args.{part}.class_path: cannot import {class_path!r} ({exc}); is the "
            f"package that defines it installed?"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ModelDescriptionError(
            f"{where}.init_args.{part}.class_path: {class_path!r} is not a subclass of {base.__qualname__}"
        )
    return cls


def resolve_description(description: Mapping[str, Any], where: str = "model") -> dict[str, Any]:
    """A copy with registered names (``dinov2``, ``DepthModel``) replaced by dotted class paths
    (and a ``DepthModel``'s ``licence`` / ``origin`` stated, ``None`` when unknown).

    A name that two plugins register raises ``PluginConflictError`` naming both.
    """
    desc = check_description(description, where)
    if desc["class_path"] in ("DepthModel", DEPTH_MODEL_CLASS_PATH):
        desc["class_path"] = DEPTH_MODEL_CLASS_PATH
        # stated even when unknown, so that a model given later in a config replaces a preset's
        # licence instead of inheriting it through jsonargparse's merge of init_args
        for key in ("licence", "origin"):
            desc["init_args"].setdefault(key, None)
    for part in ("encoder", "decoder"):
        comp = desc["init_args"][part]
        cls = _component_class(part, comp["class_path"], where)
        comp["class_path"] = f"{cls.__module__}.{cls.__qualname__}"
    return desc


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--model", type=DepthModel)
    return parser


_KEY_RE = re.compile(r'Parser key "([^"]+)"')
_OPTION_RE = re.compile(r"Option '([^']+)' is not accepted")


def _one_line(exc: BaseException, where: str) -> str:
    """The nested message of jsonargparse as one line: ``where.encoder.embed_dimm: ...``."""
    text = str(exc)
    keys = [k for k in _KEY_RE.findall(text) if k != "model"]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    option = _OPTION_RE.search(last)
    if option:
        keys.append(option.group(1))
        classes = re.findall(r"class_path '([^']+)'", text)
        owner = classes[-1].rsplit(".", 1)[-1] if classes else "the class"
        last = f"not an argument of {owner}"
    key = ".".join([where, *keys])
    return f"{key}: {last}"


def build_model(description: Mapping[str, Any], where: str = "model") -> DepthModel:
    """Instantiate a canonical (or short-form) description, validated by jsonargparse.

    ``weights`` / ``encoder_weights`` named in it are loaded. A misspelled or mistyped argument
    is a :class:`ModelDescriptionError` naming its key (e.g. ``model.encoder.embed_dimm: not an
    argument of DINOv2Encoder``). The model is returned in training mode.
    """
    desc = resolve_description(expand_model(description, where), where)
    parser = _parser()
    try:
        cfg = parser.parse_object({"model": desc})
    except ArgumentError as exc:
        raise ModelDescriptionError(_one_line(exc, where)) from None
    try:
        init = parser.instantiate(cfg)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ModelDescriptionError):
            raise
        raise ModelDescriptionError(f"{where}: {exc}") from exc
    return init.model


def _accepts(cls: type) -> set[str]:
    return {n for n, p in inspect.signature(cls).parameters.items()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}


def with_overrides(description: Mapping[str, Any], overrides: Mapping[str, Any], where: str = "model") -> dict[str, Any]:
    """A copy with flat constructor arguments routed to the encoder, the decoder or the model
    itself (``upsample_align_corners``), whichever accepts the name (encoder first).

    An unknown name is a ``ModelDescriptionError`` listing what each part accepts.
    """
    desc = check_description(description, where)
    if not overrides:
        return desc
    resolved = resolve_description(desc, where)
    init = desc["init_args"]
    enc_cls = _component_class("encoder", resolved["init_args"]["encoder"]["class_path"], where)
    dec_cls = _component_class("decoder", resolved["init_args"]["decoder"]["class_path"], where)
    enc_ok, dec_ok = _accepts(enc_cls), _accepts(dec_cls)
    for key, value in overrides.items():
        if key in enc_ok:
            init["encoder"]["init_args"][key] = value
        elif key in dec_ok:
            init["decoder"]["init_args"][key] = value
        elif key in _SHORT_KEYS:
            init[key] = value
        else:
            raise ModelDescriptionError(
                f"{where}: unknown model override {key!r}: not an argument of encoder "
                f"{enc_cls.__qualname__} ({', '.join(sorted(enc_ok))}) nor of decoder "
                f"{dec_cls.__qualname__} ({', '.join(sorted(dec_ok))})"
            )
    return desc
