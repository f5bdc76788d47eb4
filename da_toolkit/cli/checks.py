"""Checks and adaptations of a parsed run config, made before any model or data is built.

* :func:`check_crop_size` - the training crop must be a multiple of the input multiple of every
  model the task runs on the crops (the model, an online teacher), taken from the models
  themselves (built on the ``meta`` device: no memory, no weights read);
* :func:`adapt_val_check_interval` - an integer ``trainer.val_check_interval`` counts training
  steps across epochs (``check_val_every_n_epoch: null``), so a recipe's ``5000`` works on a
  data set with fewer batches per epoch instead of failing after everything is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from da_toolkit.cli.recipe_errors import ConfigValueError, RecipeError, from_constructor, from_parser_message
from da_toolkit.cli.recipe_errors import plain as _plain

__all__ = ["ConfigValueError", "RecipeError", "adapt_val_check_interval", "check_crop_size", "input_multiple_of", "parse_error_line"]


def input_multiple_of(description: Mapping[str, Any], where: str) -> int:
    """``input_multiple`` of the model a description builds, built on the meta device without weights."""
    import torch

    from da_toolkit.models.description import ModelDescriptionError, build_model

    desc = _plain(description)
    init = dict(desc.get("init_args") or {})
    init.update(weights=None, encoder_weights=None)
    for part in ("encoder", "decoder"):  # component weights files are not needed for the shape
        comp = init.get(part)
        if isinstance(comp, Mapping) and isinstance(comp.get("init_args"), Mapping) and "weights" in comp["init_args"]:
            init[part] = {**comp, "init_args": {**comp["init_args"], "weights": None}}
    try:
        with torch.device("meta"):
            model = build_model({**desc, "init_args": init}, where)
    except ModelDescriptionError as exc:
        refused = _refused_by_constructor(exc, desc)
        if refused is not None:  # e.g. the encoder's embed_dim not divisible by num_heads
            raise refused.located(prefix=where) from None
        raise RecipeError(str(exc)) from None
    return int(model.input_multiple)


def _refused_by_constructor(exc: BaseException, description: Mapping[str, Any]) -> ConfigValueError | None:
    """The component (``init_args.encoder``...) of ``description`` whose constructor raised the cause of ``exc``."""
    return from_constructor(exc.__cause__, description) if exc.__cause__ is not None else None


def _task_models(task: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(field, description)`` of every model-typed argument of a task config (class_path form)."""
    from da_toolkit.cli.model_forms import _import_class, model_parameters

    cls = _import_class(str(task.get("class_path", "")))
    init = task.get("init_args") or {}
    if cls is None or not isinstance(init, Mapping):
        return []
    return [(name, init[name]) for name in model_parameters(cls)
            if isinstance(init.get(name), Mapping) and "class_path" in init[name]]


def check_crop_size(config: Any, where: str = "") -> None:
    """Refuse ``data.init_args.crop_size`` when it is not a multiple of the models' input multiple.

    Args:
        config: a parsed (Namespace) or loaded (dict) fit config with ``model`` and ``data``.
        where: prefix of the field names in the message (e.g. ``stages.student.config.``).
    """
    cfg = _plain(config)
    task, data = cfg.get("model"), cfg.get("data")
    if not isinstance(task, Mapping) or not isinstance(data, Mapping):
        return
    crop = (data.get("init_args") or {}).get("crop_size")
    if not isinstance(crop, int) or isinstance(crop, bool):
        return
    models = _task_models(task)
    if not models:
        return
    multiples = {name: input_multiple_of(desc, f"{where}model.init_args.{name}") for name, desc in models}
    need = math.lcm(*multiples.values())
    if crop % need:
        which = ", ".join(f"model.init_args.{n}: {m}" for n, m in multiples.items())
        lower, upper = (crop // need) * need, (crop // need + 1) * need
        hint = f"{lower} or {upper}" if lower > 0 else str(upper)
        raise ConfigValueError(
            f"{where}data.init_args.crop_size",
            f"{crop} is not a multiple of {need}, the input multiple "
            f"{'the model needs' if len(multiples) == 1 else 'the models run on the crops need'} ({which}); "
            f"use {hint}",
        )


def adapt_val_check_interval(trainer: Any) -> bool:
    """Make an integer ``val_check_interval`` count training steps across epochs.

    Lightning refuses an integer ``val_check_interval`` larger than the batches of one epoch
    unless ``check_val_every_n_epoch`` is ``None``; with ``None`` it validates every N training
    steps, which is what a step-based recipe means. ``trainer`` (Namespace or dict) is changed in
    place when ``check_val_every_n_epoch`` is its default 1; returns whether it was changed.
    """
    get = trainer.get if hasattr(trainer, "get") else (lambda k, d=None: getattr(trainer, k, d))
    interval = get("val_check_interval", None)
    if not isinstance(interval, int) or isinstance(interval, bool) or get("check_val_every_n_epoch", 1) != 1:
        return False
    if isinstance(trainer, dict):
        trainer["check_val_every_n_epoch"] = None
    else:
        trainer.check_val_every_n_epoch = None
    return True


def parse_error_line(text: str) -> str:
    """The nested error message of jsonargparse as one line ``dotted.key: what is wrong``.

    E.g. ``model.init_args.model.init_args.encoder.init_args.embed_dimm: not an argument of
    DINOv2Encoder`` for a misspelled encoder argument (see
    :func:`~da_toolkit.cli.recipe_errors.from_parser_message`).
    """
    error = from_parser_message(text)
    return f"{error.key}: {error.detail}" if error.key else error.detail
