"""Check an encoder (and a whole model) against what it declares, before training starts.

An :class:`~da_toolkit.models.encoders.base.Encoder` declares ``out_channels`` and
``reductions`` (the stride of each level) and, for ViTs, ``patch_size``. The decoder is built
from those declarations (:class:`~da_toolkit.models.decoders.dpt.DPTDecoder` picks its resize
layers from the strides), so an encoder that returns other channels or strides than it declares
fails deep inside the decoder - or, for strides, trains a silently wrong model.
:func:`check_encoder` runs one tiny dry forward and compares; :func:`check_model` does that for
``model.encoder`` and checks that the whole model returns ``(B,H,W)``. Errors are one line
naming the recipe key, the class, what was expected and what came.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "DPT_LEVELS",
    "EncoderContractError",
    "check_encoder",
    "check_model",
    "dry_input_size",
    "input_channels",
]

#: Number of encoder levels the DPT decoder fuses.
DPT_LEVELS = 4
_TORCH_DIR = os.path.dirname(torch.__file__)


class EncoderContractError(ValueError):
    """An encoder or model does not do what it declares; the message names key and class."""


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _int_list(value: Any) -> list[int] | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        return None
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v <= 0:
            return None
        out.append(int(v))
    return out


def dry_input_size(encoder: nn.Module) -> tuple[int, int]:
    """``(H, W)`` of the dry-run input: ``(2m, 3m)`` with ``m`` the least common multiple of the
    patch size and every reduction (non-square, so swapped axes show; every level is exact)."""
    m = math.lcm(*[int(r) for r in encoder.reductions], int(getattr(encoder, "patch_size", None) or 1))
    return 2 * m, 3 * m


def _where_it_failed(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(_TORCH_DIR)]
    if not frames:
        return ""
    f = frames[-1]
    return f" (at {f.filename}:{f.lineno} in {f.name})"


def _dry_forward(module: nn.Module, args: tuple[Any, ...], what: str, where: str, shape: tuple[int, ...]) -> Any:
    modes = [(m, m.training) for m in module.modules()]
    module.eval()  # no running-stat updates, no dropout; every submodule's own mode restored below
    try:
        with torch.no_grad():
            return module(*args)
    except Exception as exc:  # noqa: BLE001 - reported as one line naming the component
        raise EncoderContractError(
            f"{where}: {_class_name(module)} failed on a dry forward of a {shape} input "
            f"({what}): {type(exc).__name__}: {exc}{_where_it_failed(exc)}"
        ) from None
    finally:
        for m, training in modes:
            m.training = training


def input_channels(encoder: nn.Module) -> int:
    """Channels of the encoder's input: its ``in_channels`` attribute if it has one, else 3 (RGB)."""
    value = getattr(encoder, "in_channels", None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 3


def _input_for(module: nn.Module, size: tuple[int, int], channels: int) -> torch.Tensor:
    ref = next((t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()), None)
    g = torch.Generator().manual_seed(0)  # never touches the global random state
    x = torch.randn(1, channels, *size, generator=g)
    return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)


def _shape_text(c: int, h: int, w: int) -> str:
    return f"{c}x{h}x{w}"


def check_encoder(
    encoder: nn.Module, where: str, levels: int | None = None, input_size: tuple[int, int] | None = None
) -> Any:
    """Raise :class:`EncoderContractError` unless ``encoder`` returns what it declares.

    Checks the declarations (``out_channels`` and ``reductions``: equal-length lists of positive
    ints, ``levels`` of them if given, e.g. :data:`DPT_LEVELS`; ``patch_size`` ``None`` or a
    positive int), then runs one forward on a ``(1,C,H,W)`` input (``C`` = :func:`input_channels`,
    ``(H, W)`` = :func:`dry_input_size` or ``input_size``) in eval mode without gradients and checks that it returns ``features`` with
    one ``(1, out_channels[i], H/reductions[i], W/reductions[i])`` map per level (strides
    included) and ``cls_tokens`` ``None`` or one ``(1, out_channels[i])`` per level. ``where``
    is the recipe key shown in the message (e.g. ``model.init_args.encoder``). The encoder's
    train/eval modes, parameters and the global random state are left as they were. Returns the
    dry run's output (an ``EncoderOutput``).
    """
    name = _class_name(encoder)
    if not isinstance(encoder, nn.Module):
        raise EncoderContractError(f"{where}: {name} is not a torch.nn.Module encoder")
    channels, reductions = _int_list(getattr(encoder, "out_channels", None)), _int_list(getattr(encoder, "reductions", None))
    if channels is None or reductions is None:
        raise EncoderContractError(
            f"{where}: {name} must declare out_channels and reductions as lists of positive ints "
            f"(one per level), got out_channels={getattr(encoder, 'out_channels', None)!r}, "
            f"reductions={getattr(encoder, 'reductions', None)!r}"
        )
    if len(channels) != len(reductions):
        raise EncoderContractError(
            f"{where}: {name} declares {len(channels)} out_channels {channels} but {len(reductions)} reductions {reductions}"
        )
    if levels is not None and len(channels) != levels:
        raise EncoderContractError(
            f"{where}: {name} declares {len(channels)} levels (out_channels {channels}); the decoder needs {levels}"
        )
    patch = getattr(encoder, "patch_size", None)
    if patch is not None and (isinstance(patch, bool) or not isinstance(patch, int) or patch <= 0):
        raise EncoderContractError(f"{where}: {name}.patch_size must be None or a positive int, got {patch!r}")
    size = input_size or dry_input_size(encoder)
    c_in = input_channels(encoder)
    x = _input_for(encoder, size, c_in)
    out = _dry_forward(encoder, (x,), "encoder contract check", where, tuple(x.shape))
    features = getattr(out, "features", None)
    if not isinstance(features, (list, tuple)) or not all(isinstance(f, torch.Tensor) for f in features):
        raise EncoderContractError(
            f"{where}: {name}.forward returned {type(out).__name__}; expected an EncoderOutput(features=[tensors], cls_tokens)"
        )
    h, w = size
    expected = [_shape_text(c, h // r, w // r) for c, r in zip(channels, reductions)]
    got = [_shape_text(*f.shape[1:]) if f.dim() == 4 else f"shape {tuple(f.shape)}" for f in features]
    if got != expected or any(f.shape[0] != 1 for f in features):
        strides = [
            f"{h / f.shape[-2]:g}x{w / f.shape[-1]:g}" if f.dim() == 4 and f.shape[-2] and f.shape[-1] else "?"
            for f in features
        ]
        raise EncoderContractError(
            f"{where}: {name} declares out_channels {channels} and reductions {reductions}, so a "
            f"(1,{c_in},{h},{w}) input should give {len(expected)} levels CxHxW {expected}; it returned "
            f"{len(got)} levels {got} (strides {strides})"
        )
    cls_tokens = getattr(out, "cls_tokens", None)
    if cls_tokens is not None:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in cls_tokens]
        if shapes != [(1, c) for c in channels]:
            raise EncoderContractError(
                f"{where}: {name} returned cls_tokens {shapes}; expected None or one (B, C) per level {[(1, c) for c in channels]}"
            )
    return out


def check_model(model: nn.Module, where: str = "model", input_size: tuple[int, int] | None = None) -> None:
    """:func:`check_encoder` on ``model.encoder`` (key ``<where>.init_args.encoder``; 4 levels when
    the decoder is DPT), then ``model.decoder`` on that dry-run output, which must return
    ``(1,H,W)`` floats (key ``<where>.init_args.decoder``). One encoder and one decoder forward."""
    from da_toolkit.models.decoders.dpt import DPTDecoder

    encoder, decoder = getattr(model, "encoder", None), getattr(model, "decoder", None)
    if not isinstance(encoder, nn.Module) or not isinstance(decoder, nn.Module):
        raise EncoderContractError(f"{where}: {_class_name(model)} has no encoder/decoder modules")
    levels = DPT_LEVELS if isinstance(decoder, DPTDecoder) else None
    enc = check_encoder(encoder, f"{where}.init_args.encoder", levels=levels, input_size=input_size)
    size = input_size or dry_input_size(encoder)
    key = f"{where}.init_args.decoder"
    shape = (1, input_channels(encoder), *size)
    out = _dry_forward(decoder, (enc, size), "decoder contract check", key, shape)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, *size) or not out.is_floating_point():
        got = f"{out.dtype} tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise EncoderContractError(
            f"{key}: {_class_name(decoder)} returned a {got} for a {shape} input; "
            f"expected (B,H,W) = (1, {size[0]}, {size[1]}) floats"
        )
