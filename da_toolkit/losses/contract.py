"""Check a loss against the call a task will make, before training starts.

Two call forms exist (``docs/plugins.md``):

- ``"labeled"``: ``loss(pred, target, mask) -> scalar`` with ``pred``/``target`` ``(B,H,W)`` and a
  bool ``mask`` ``(B,H,W)`` (True = valid) - the labeled and gradient losses of every task;
- ``"cutmix"``: ``loss(pred, target_a, target_b, mask, valid) -> scalar`` - the student's loss on
  CutMix images (``mask`` True where the pixel comes from image a, ``valid`` bool ``(B,H,W)``);
  :class:`~da_toolkit.losses.CutMixRegionLoss` turns a labeled-form loss into one.

:func:`check_loss` verifies the signature (:mod:`inspect`) and makes one tiny call on ``(2,8,8)``
tensors, so that a wrong loss fails when the task is built, with a one-line message naming the
recipe key, the class, what was expected and what came - not at the first training step.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["LOSS_CALLS", "LossContractError", "LossSignature", "check_loss"]

LossSignature = Literal["labeled", "cutmix"]
#: The positional arguments of each call form, in the order tasks pass them.
LOSS_CALLS: dict[str, tuple[str, ...]] = {
    "labeled": ("pred", "target", "mask"),
    "cutmix": ("pred", "target_a", "target_b", "mask", "valid"),
}
_SIDE = 8


class LossContractError(TypeError):
    """A loss does not fit the call a task makes; the message names the recipe key and class."""


def _class_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _call_text(signature: str) -> str:
    return f"({', '.join(LOSS_CALLS[signature])})"


def _tiny_inputs(signature: str, device: torch.device) -> list[Tensor]:
    g = torch.Generator().manual_seed(0)  # never touches the global random state
    shape = (2, _SIDE, _SIDE)
    pred = (torch.rand(shape, generator=g) + 0.1).to(device).requires_grad_(True)
    targets = [(torch.rand(shape, generator=g) + 0.1).to(device) for _ in range(2)]
    valid = torch.ones(shape, dtype=torch.bool)
    valid[:, 0, :2] = False
    if signature == "labeled":
        return [pred, targets[0], valid.to(device)]
    mix = torch.zeros(shape, dtype=torch.bool)
    mix[:, :, : _SIDE // 2] = True  # left half from image a
    return [pred, targets[0], targets[1], mix.to(device), valid.to(device)]


def _device_of(loss: Any) -> torch.device:
    if isinstance(loss, nn.Module):
        for tensor in (*loss.parameters(), *loss.buffers()):
            return tensor.device
    return torch.device("cpu")


def _check_signature(fn: Callable[..., Any], signature: str, where: str, name: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: the tiny call decides
        return
    n = len(LOSS_CALLS[signature])
    shown = sig.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )
    try:
        sig.bind(*range(n))
    except TypeError as exc:
        hint = ""
        if signature == "cutmix":
            try:
                sig.bind(*range(len(LOSS_CALLS["labeled"])))
                hint = "; it has the labeled form: wrap it as CutMixRegionLoss(region_loss=...) (losses 'cutmix_region')"
            except TypeError:
                pass
        raise LossContractError(
            f"{where}: {name}.forward{shown} cannot take the {signature} loss call "
            f"{_call_text(signature)} ({exc}){hint}"
        ) from None


def check_loss(loss: Callable[..., Any], signature: LossSignature, where: str) -> None:
    """Raise :class:`LossContractError` unless ``loss`` fits the ``signature`` call form.

    Checks that ``loss`` (its ``forward`` for modules) accepts the positional call of
    :data:`LOSS_CALLS` ``[signature]``, then calls it once on tiny ``(2,8,8)`` float32 tensors
    (on the loss's device) and checks that it returns a finite floating-point scalar tensor
    that depends on ``pred`` (so gradients reach the model). ``where`` is the recipe key shown
    in the message (e.g. ``model.init_args.unlabeled_loss``). Does not change the loss or the
    global random state.
    """
    if signature not in LOSS_CALLS:
        raise ValueError(f"check_loss: signature must be one of {sorted(LOSS_CALLS)}, got {signature!r}")
    name = _class_name(loss)
    if not callable(loss):
        raise LossContractError(f"{where}: {name} is not callable; expected a loss module {_call_text(signature)} -> scalar")
    fn = loss.forward if isinstance(loss, nn.Module) else loss
    _check_signature(fn, signature, where, name)
    args = _tiny_inputs(signature, _device_of(loss))
    call = f"a tiny {signature} call {_call_text(signature)} on (2,{_SIDE},{_SIDE}) tensors"
    try:
        with torch.enable_grad():
            out = loss(*args)
    except Exception as exc:  # noqa: BLE001 - reported as one line naming the component
        raise LossContractError(f"{where}: {name} failed on {call}: {type(exc).__name__}: {exc}") from None
    if not isinstance(out, Tensor):
        raise LossContractError(f"{where}: {name} returned {type(out).__name__} on {call}; expected a scalar tensor")
    if out.numel() != 1 or not out.is_floating_point():
        raise LossContractError(
            f"{where}: {name} returned a {out.dtype} tensor of shape {tuple(out.shape)} on {call}; "
            f"expected a floating-point scalar"
        )
    if not bool(torch.isfinite(out.detach()).all()):
        raise LossContractError(f"{where}: {name} returned {out.item()} on {call}; expected a finite value")
    if not out.requires_grad:
        raise LossContractError(
            f"{where}: {name} returned a value that does not depend on pred on {call} "
            f"(no gradient would reach the model)"
        )
