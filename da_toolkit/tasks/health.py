"""Training-health checks: a loud warning when a model starts dead, and a refusal to write
constant pseudo-labels (issue 14).

* :class:`TrainingHealthCheck` - a Lightning callback that watches the first ``steps`` training
  steps and warns (:class:`DeadModelWarning`) when the model's predictions were constant in every
  one of them, or when the loss gave a zero gradient to every trainable parameter in every one of
  them (``strict=True`` raises :class:`DeadModelError` instead).
* :func:`check_pseudo_labels` - raises :class:`ConstantPseudoLabelError` naming the teacher file
  when a batch of pseudo-labels holds a constant (or non-finite) map.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

__all__ = [
    "ConstantPseudoLabelError",
    "DeadModelError",
    "DeadModelWarning",
    "TrainingHealthCheck",
    "check_pseudo_labels",
    "constant_maps",
]

log = logging.getLogger(__name__)


class DeadModelWarning(UserWarning):
    """The model's predictions were constant, or its gradient zero, from the start of training."""


class DeadModelError(RuntimeError):
    """:class:`TrainingHealthCheck` with ``strict=True`` found a dead model."""


class ConstantPseudoLabelError(ValueError):
    """A pseudo-label map is constant (or not finite): the teacher is dead or broken."""


def constant_maps(maps: Tensor, atol: float = 0.0) -> Tensor:
    """Bool ``(B,)``: which maps of ``maps`` ``(B,...)`` are constant (``max - min <= atol``).

    Non-finite values count as not constant here (see :func:`check_pseudo_labels`).
    """
    flat = maps.detach().reshape(maps.shape[0], -1)
    spread = flat.amax(dim=1) - flat.amin(dim=1)
    return spread <= atol


def _prediction(output: Any) -> Tensor | None:
    """The prediction tensor of a model's forward output (a tensor, or the first item)."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


class TrainingHealthCheck(pl.Callback):
    """Warn loudly when a fit starts with a dead model.

    During the first ``steps`` training steps it records, per step, (1) whether every prediction
    of the watched module (``pl_module.<model_attr>``, else the task itself; forward output
    ``(B,H,W)`` or a tuple starting with it) was constant per sample, and (2) whether the
    backward pass left every trainable parameter with a zero (or no) gradient. If (1) held in all
    of those steps, or (2) did, it warns with :class:`DeadModelWarning` (once, on global rank 0)
    naming what it saw; ``strict=True`` raises :class:`DeadModelError` instead. Afterwards it
    costs nothing.

    Args:
        steps: number of first training steps to watch (>= 1).
        strict: raise instead of warning.
        model_attr: attribute of the task holding the model whose predictions are watched.
        atol: predictions count as constant when ``max - min <= atol`` per sample.
    """

    def __init__(self, steps: int = 10, strict: bool = False, model_attr: str = "model", atol: float = 0.0) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"TrainingHealthCheck: steps must be >= 1, got {steps}")
        self.steps = int(steps)
        self.strict = bool(strict)
        self.model_attr = model_attr
        self.atol = float(atol)
        self._seen = 0
        self._constant_steps = 0
        self._zero_grad_steps = 0
        self._step_constant: bool | None = None
        self._step_zero_grad: bool | None = None
        self._last_value: float | None = None
        self._watching = False
        self._handle: Any = None
        self.reported = False

    # --------------------------------------------------------------------------- hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning hook: watch the model's outputs during the first steps."""
        target = getattr(pl_module, self.model_attr, None)
        module = target if isinstance(target, nn.Module) else pl_module
        if self._handle is None and self._seen < self.steps:
            self._handle = module.register_forward_hook(self._on_forward)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Lightning hook: reset this step's observations."""
        self._watching = self._seen < self.steps
        self._step_constant = None
        self._step_zero_grad = None

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning hook: record whether every gradient of this step is zero."""
        if not self._watching:
            return
        zero = True
        for p in pl_module.parameters():
            if p.requires_grad and p.grad is not None and bool(p.grad.detach().abs().sum() > 0):
                zero = False
                break
        self._step_zero_grad = zero if self._step_zero_grad is None else (self._step_zero_grad and zero)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Lightning hook: count the watched step; warn once the first steps all looked dead."""
        if not self._watching:
            return
        self._watching = False
        self._seen += 1
        self._constant_steps += int(bool(self._step_constant))
        self._zero_grad_steps += int(bool(self._step_zero_grad))
        if self._seen >= self.steps:
            self._remove_hook()
            self._report(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning hook: stop watching (remove the forward hook)."""
        self._remove_hook()

    # --------------------------------------------------------------------------- internals
    def _on_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        if not (self._watching and module.training):
            return
        pred = _prediction(output)
        if pred is None or pred.numel() == 0:
            return
        constant = bool(constant_maps(pred, self.atol).all())
        if constant:
            self._last_value = float(pred.detach().reshape(-1)[0])
        self._step_constant = constant if self._step_constant is None else (self._step_constant and constant)

    def _remove_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _report(self, trainer: pl.Trainer) -> None:
        problems = []
        if self._constant_steps == self._seen:
            problems.append(
                f"its predictions were constant (every pixel {self._last_value!r}) in each of the first "
                f"{self._seen} training steps"
            )
        if self._zero_grad_steps == self._seen:
            problems.append(
                f"the loss gave a zero gradient to every trainable parameter in each of the first {self._seen} steps"
            )
        if not problems:
            return
        message = (
            "DEAD MODEL: " + "; ".join(problems) + ". Training cannot make progress (e.g. a ReLU head whose "
            "output is 0 everywhere, a frozen model, or a learning rate of 0); check the model's "
            "initialisation or weights, which parameters are trainable, and the optimiser."
        )
        self.reported = True
        if self.strict:
            raise DeadModelError(message)
        if getattr(trainer, "is_global_zero", True):
            log.error(message)
            warnings.warn(message, DeadModelWarning, stacklevel=2)


def check_pseudo_labels(
    labels: Tensor,
    teacher: str | os.PathLike[str] | None,
    names: Sequence[str] | None = None,
    atol: float = 0.0,
) -> None:
    """Refuse to write pseudo-labels that cannot be right.

    Args:
        labels: ``(B,H,W)`` (or ``(B,1,H,W)``) teacher predictions about to be written.
        teacher: the teacher's weights file (named in the error), or ``None`` when the teacher has
            no weights file.
        names: the images' names, ``len == B`` (named in the error), or ``None``.
        atol: a map is constant when ``max - min <= atol``.

    Raises:
        ConstantPseudoLabelError: a map is constant (the teacher predicts the same value at every
            pixel: a dead model or random weights) or holds NaN/inf.
    """
    if labels.dim() not in (3, 4) or labels.shape[0] == 0:
        raise ValueError(
            f"check_pseudo_labels: labels must be (B,H,W) or (B,1,H,W) with B > 0, got {tuple(labels.shape)}"
        )
    if names is not None and len(names) != labels.shape[0]:
        raise ValueError(f"check_pseudo_labels: got {len(names)} names for {labels.shape[0]} label maps")
    source = f"teacher weights {os.fspath(teacher)!r}" if teacher is not None else "the teacher (no weights file)"
    flat = labels.detach().reshape(labels.shape[0], -1)
    finite = torch.isfinite(flat).all(dim=1)
    constant = constant_maps(labels, atol) & finite
    for i in range(labels.shape[0]):
        which = f"image {names[i]!r}" if names is not None else f"item {i} of the batch"
        if not bool(finite[i]):
            raise ConstantPseudoLabelError(
                f"refusing to write pseudo-labels: the prediction of {source} for {which} holds NaN/inf values"
            )
        if bool(constant[i]):
            value = float(flat[i, 0])
            raise ConstantPseudoLabelError(
                f"refusing to write pseudo-labels: {source} predicts the constant {value!r} at every pixel of "
                f"{which}; the teacher is dead or untrained (check the weights file and the model description)"
            )
