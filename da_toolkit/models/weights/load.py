"""Loading weights into existing modules (strict), with the head recorded by the file enforced."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from da_toolkit.models.weights.errors import (
    HeadMismatchError,
    WeightsError,
    WeightsMismatchError,
)
from da_toolkit.models.weights.formats import LoadedWeights, read_weights

__all__ = ["NO_HEAD_RECORDED", "check_head", "file_head", "load_encoder_weights", "load_strict", "load_weights"]

#: What :func:`file_head` returns for files that record no head.
NO_HEAD_RECORDED: object = object()


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], path: str) -> None:
    """``module.load_state_dict(sd)`` that lists missing, unexpected and mis-shaped keys
    (:class:`WeightsMismatchError` naming ``path``) instead of torch's message."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    mismatched = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in sorted(set(sd) & set(own))
                  if sd[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise WeightsMismatchError(path, missing, unexpected, mismatched)
    module.load_state_dict(dict(sd), strict=True)


def file_head(loaded: LoadedWeights) -> object:
    """The decoder's ``max_depth`` the file records (``None`` = relative head), or a private
    sentinel when the file records no head (official ``.pth`` files)."""
    if loaded.description is None:
        return NO_HEAD_RECORDED
    dec_args = loaded.description.get("init_args", {}).get("decoder", {}).get("init_args", {})
    if "max_depth" not in dec_args:
        return NO_HEAD_RECORDED
    value = dec_args["max_depth"]
    return None if value is None else float(value)


def _head_name(max_depth: float | None) -> str:
    return "a relative (disparity) head" if max_depth is None else f"a metric head (max_depth {max_depth:g} m)"


def check_head(model: nn.Module, loaded: LoadedWeights) -> None:
    """Refuse weights whose recorded head differs from the model's (issue: a metric fine-tune
    loaded as a relative model predicts garbage silently). Files without a record pass."""
    recorded = file_head(loaded)
    if recorded is NO_HEAD_RECORDED:
        return
    ours = getattr(model, "max_depth", None)
    ours = None if ours is None else float(ours)
    if recorded != ours:
        raise HeadMismatchError(
            f"{loaded.path}: the file records {_head_name(recorded)} (output "  # type: ignore[arg-type]
            f"{'disparity' if recorded is None else 'metres'}), but the model has {_head_name(ours)}; "
            f"build the model from the file (load_model(path)), give the decoder max_depth: {recorded}, "
            f"or load only its encoder (encoder_weights=) to train another head"
        )


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> LoadedWeights:
    """Load a full checkpoint (any supported format) into ``model`` (strict).

    Raises :class:`WeightsMismatchError` (naming the file, listing missing, unexpected and
    mis-shaped keys) when the weights do not fit, :class:`HeadMismatchError` when the file
    records another head kind or ``max_depth`` than ``model`` has, and the errors of
    :func:`~da_toolkit.models.weights.formats.read_weights`.
    """
    loaded = read_weights(path)
    if loaded.backbone_only:
        raise WeightsError(
            f"{path}: a backbone-only ({loaded.format}) checkpoint has no decoder; "
            f"use load_encoder_weights(model.encoder, path) (or encoder_weights=)"
        )
    check_head(model, loaded)
    load_strict(model, loaded.state_dict, str(path))
    return loaded


def load_encoder_weights(encoder: nn.Module, path: str | os.PathLike[str]) -> LoadedWeights:
    """Initialise an encoder from a backbone checkpoint or the encoder part of a full one.

    A checkpoint without ``mask_token`` (timm) keeps the encoder's own (it is unused).
    """
    loaded = read_weights(path)
    sd = dict(loaded.state_dict)
    if not loaded.backbone_only:
        sd = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    own = encoder.state_dict()
    if "mask_token" in own and "mask_token" not in sd:
        sd["mask_token"] = own["mask_token"]
    load_strict(encoder, sd, str(path))
    return loaded
