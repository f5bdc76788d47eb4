"""Short forms of a model in recipes and on the command line, expanded before parsing.

Every parameter typed :class:`~da_toolkit.models.depth_model.DepthModel` (a task's ``model``, the
student's online ``teacher``, the pseudo-label job's ``teacher``) takes the canonical description
(``class_path: DepthModel`` + typed ``init_args`` with ``encoder``, ``decoder``, ``weights``, ...),
which jsonargparse validates and ``--print_config`` prints in full. Before parsing, these short
forms are replaced by that canonical form (:func:`expand_model_value`):

* a preset name: ``model: tiny``, ``model: depth-anything-v2-vits``;
* a mapping with a preset: ``model: {preset: NAME, weights: ..., encoder_weights: ...,
  encoder: {init_args overrides}, decoder: {...}}``;
* a weights file that records its model (a task ``.ckpt``, our safetensors, a pipeline stage's
  ``final.ckpt``): ``model: runs/teacher/final.ckpt``, or ``model: {weights: FILE}``; the
  description is read from the file and its weights are loaded from it.

Which parameters are model-typed is read from the signatures of the classes the config names
(``class_path``), so a plugin's task with a ``DepthModel`` parameter gets the same forms.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from da_toolkit.cli.class_paths import join_key

__all__ = ["ModelFormError", "description_of_file", "expand_model_value", "expand_models", "model_parameters"]

#: file suffixes taken as weights files when a model is given as a string
WEIGHTS_SUFFIXES = (".ckpt", ".safetensors", ".pth", ".pt", ".bin")


class ModelFormError(ValueError):
    """A model short form that cannot be expanded (the message names the config key)."""


class MissingWeightsFile(ModelFormError):
    """A model given as a weights file that does not exist."""


def _depth_model_class() -> type:
    from da_toolkit.models.depth_model import DepthModel

    return DepthModel


def _is_model_type(annotation: Any) -> bool:
    model_cls = _depth_model_class()
    if isinstance(annotation, type):
        return issubclass(annotation, model_cls)
    args = typing.get_args(annotation)
    return bool(args) and any(isinstance(a, type) and issubclass(a, model_cls) for a in args)


@functools.cache
def model_parameters(cls: type) -> tuple[str, ...]:
    """Names of the ``__init__`` parameters of ``cls`` (following ``**kwargs`` to the bases, as
    jsonargparse does) typed ``DepthModel`` or ``DepthModel | None``."""
    names: list[str] = []
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            hints = typing.get_type_hints(init)
            params = inspect.signature(init).parameters
        except (NameError, TypeError, ValueError):
            break
        for name in params:
            if name != "self" and name in hints and _is_model_type(hints[name]) and name not in names:
                names.append(name)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return tuple(names)


def _import_class(path: str) -> type | None:
    from da_toolkit.cli.class_paths import known_class_names

    if "." in path:
        module, _, attr = path.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            return None
        return obj if isinstance(obj, type) else None
    return known_class_names().get(path)


def description_of_file(path: str, where: str) -> dict[str, Any]:
    """The model description a weights file records, with ``weights`` set to the file."""
    from da_toolkit.models.weights import read_weights

    try:
        loaded = read_weights(path)
    except FileNotFoundError:
        raise MissingWeightsFile(f"{where}: weights file {path} does not exist") from None
    except ValueError as exc:  # WeightsError and friends name the file
        raise ModelFormError(f"{where}: {exc}") from None
    if loaded.description is None:
        raise ModelFormError(
            f"{where}: {path} does not record its model ({loaded.format} weights); give the architecture "
            f"too, e.g. {{preset: depth-anything-v2-vits, weights: {path}}}"
        )
    description = dict(loaded.description)
    description["init_args"] = {**dict(description.get("init_args") or {}), "weights": str(path)}
    return description


def _looks_like_file(text: str) -> bool:
    return text.endswith(WEIGHTS_SUFFIXES) or os.sep in text or Path(text).exists()


def expand_model_value(value: Any, where: str) -> Any:
    """The canonical description of one model value (short forms in the module docstring).

    ``None`` is returned unchanged. The encoder's and decoder's ``init_args`` list every
    constructor argument (defaults filled in), so a later config that gives the model again
    replaces it whole instead of merging into it.
    """
    from da_toolkit.models.description import ModelDescriptionError, expand_model

    if value is None:
        return None
    try:
        if isinstance(value, str) and _looks_like_file(value):
            return complete_description(description_of_file(value, where), where)
        if isinstance(value, Mapping) and "class_path" not in value and "preset" not in value:
            if set(value) == {"weights"} and isinstance(value.get("weights"), str):
                return complete_description(description_of_file(value["weights"], where), where)
            raise ModelFormError(
                f"{where}: a model is a preset name, a weights file that records its model, "
                f"{{preset: NAME, weights: ...}} or {{class_path: DepthModel, init_args: ...}}; got keys "
                f"{sorted(value)}"
            )
        if isinstance(value, (str, Mapping)):
            return complete_description(expand_model(value, where), where)
    except ModelFormError:
        raise
    except ModelDescriptionError as exc:
        message = str(exc)
        raise ModelFormError(message if message.startswith(where) else f"{where}: {message}") from None
    raise ModelFormError(f"{where}: expected a model description, got {type(value).__name__}")


def complete_description(description: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``description`` with dotted class paths and every constructor argument of the encoder and
    the decoder (defaults of their signatures filled in where the description gives none)."""
    from da_toolkit.models.description import resolve_description

    desc = resolve_description(description, where)
    for part in ("encoder", "decoder"):
        comp = desc["init_args"][part]
        cls = _import_class(comp["class_path"])
        if cls is None:
            continue
        args = dict(comp.get("init_args") or {})
        for name, param in inspect.signature(cls).parameters.items():
            if name in args or param.default is inspect.Parameter.empty:
                continue
            if param.kind in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL):
                continue
            default = param.default
            if isinstance(default, tuple):
                default = list(default)
            if default is None or isinstance(default, (bool, int, float, str, list, dict)):
                args[name] = default
        comp["init_args"] = args
    return desc


def expand_models(obj: Any, where: str = "config", group_classes: Mapping[str, type] | None = None,
                  deferred: dict[str, ModelFormError] | None = None) -> Any:
    """A copy of a loaded config with every model-typed value in canonical form.

    Args:
        obj: the config (mappings / lists as loaded from YAML).
        where: name of the config in error messages.
        group_classes: class of top-level groups that give no ``class_path`` themselves (e.g.
            ``{"model": PseudoLabelTask}``, or the class an earlier ``--config`` named).
        deferred: when given, a weights file that does not exist is not an error yet: the value is
            left out of the config and the error stored under its dotted key (a later config or argument
            may replace it, e.g. a test's override of a recipe's ``FILL_ME`` path); a model value
            this config sets removes the stored error of its key.
    """
    if not isinstance(obj, Mapping):
        return obj
    out = dict(obj)
    for key, value in out.items():
        cls = (group_classes or {}).get(key)
        out[key] = _expand(value, join_key(where, key), key, cls, deferred)
    return out


def _expand(obj: Any, where: str, key: str, cls: type | None, deferred: dict[str, ModelFormError] | None) -> Any:
    if isinstance(obj, list):
        return [_expand(v, f"{where}[{i}]", f"{key}[{i}]", None, deferred) for i, v in enumerate(obj)]
    if not isinstance(obj, Mapping):
        return obj
    out = dict(obj)
    if isinstance(out.get("class_path"), str):
        cls = _import_class(out["class_path"]) or cls
    if isinstance(out.get("init_args"), Mapping):
        out["init_args"] = _expand_args(out["init_args"], f"{where}.init_args", f"{key}.init_args", cls, deferred)
        return out
    if cls is not None and "class_path" not in out:  # the arguments of a known class (pseudo-label's `model`)
        return _expand_args(out, where, key, cls, deferred)
    return {k: _expand(v, f"{where}.{k}", f"{key}.{k}", None, deferred) for k, v in out.items()}


def _expand_args(args: Mapping[str, Any], where: str, key: str, cls: type | None,
                 deferred: dict[str, ModelFormError] | None) -> dict[str, Any]:
    names = model_parameters(cls) if cls is not None else ()
    out: dict[str, Any] = {}
    for k, v in args.items():
        if k not in names:
            out[k] = _expand(v, f"{where}.{k}", f"{key}.{k}", None, deferred)
            continue
        if deferred is not None:
            deferred.pop(f"{key}.{k}", None)
        try:
            out[k] = expand_model_value(v, f"{where}.{k}")
        except MissingWeightsFile as exc:
            if deferred is None:
                raise
            deferred[f"{key}.{k}"] = exc  # left out: jsonargparse checks each config file on its own
    return out


def model_parameter_names() -> set[str]:
    """Names of model-typed parameters over every imported LightningModule subclass."""
    import lightning.pytorch as pl

    from da_toolkit.cli.class_paths import _all_subclasses, import_resolvable_classes

    import_resolvable_classes()
    names: set[str] = set()
    for cls in _all_subclasses(pl.LightningModule):
        names.update(model_parameters(cls))
    return names


def expand_argument(key: str, value: str) -> str | None:
    """The canonical description (YAML flow text) for a command-line model value, or ``None`` when
    ``--key`` is not a model-typed parameter or the value is already canonical."""
    parts = key.lstrip("-").split(".")
    if len(parts) < 2 or parts[-1] not in model_parameter_names():
        return None
    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError:
        return None
    if isinstance(loaded, Mapping) and "class_path" in loaded:
        return None
    if not isinstance(loaded, (str, Mapping)):
        return None
    expanded = expand_model_value(loaded, key.lstrip("-"))
    return yaml.safe_dump(expanded, default_flow_style=True, sort_keys=False).strip()
