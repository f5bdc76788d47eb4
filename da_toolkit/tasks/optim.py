"""Optimiser parameter groups and learning-rate schedules shared by every task.

The paper trains the encoder with a small learning rate (5e-6) and the decoder with ten times
more; V1 uses AdamW with a linear decay, V2's metric fine-tuning a poly(0.9) decay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

OptimizerName = Literal["adamw", "adam", "sgd"]
ScheduleName = Literal["linear", "poly", "constant"]


def _adamw(params: list[dict], weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, weight_decay=weight_decay)


def _adam(params: list[dict], weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, weight_decay=weight_decay)


def _sgd(params: list[dict], weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, momentum=0.9, weight_decay=weight_decay)


#: optimiser name -> constructor ``(param_groups, weight_decay) -> Optimizer``
OPTIMIZERS: dict[str, Callable[[list[dict], float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "adam": _adam,
    "sgd": _sgd,
}


def linear_factor(step: int, total: int, warmup: int = 0, power: float = 1.0) -> float:
    """Multiplier of the base lr at ``step``: linear warm-up then ``(1 - t)^power`` decay to 0.

    ``t`` is the fraction of the post-warm-up steps done; ``power=1`` is the linear schedule,
    ``power=0.9`` the poly schedule. ``total <= 0`` means unknown length: constant 1 after warm-up.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= 0:
        return 1.0
    span = max(1, total - warmup)
    t = min(1.0, max(0.0, (step - warmup) / span))
    return (1.0 - t) ** power


#: schedule name -> power of the decay (None = constant)
SCHEDULE_POWERS: dict[str, float | None] = {"linear": 1.0, "poly": None, "constant": 0.0}


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings of a task.

    Args:
        optimizer: ``adamw`` (V1), ``adam`` (V2 relative) or ``sgd``.
        encoder_lr: learning rate of the encoder parameters (paper: 5e-6).
        decoder_lr_mult: decoder (and any head) lr = ``encoder_lr * decoder_lr_mult`` (paper: 10).
        weight_decay: weight decay of every group (V2 metric: 0.01).
        schedule: ``linear`` decay to 0, ``poly`` decay ``(1-t)^poly_power``, or ``constant``.
        poly_power: exponent of the poly schedule (paper: 0.9).
        warmup_steps: linear warm-up steps before the decay.
    """

    optimizer: OptimizerName = "adamw"
    encoder_lr: float = 5e-6
    decoder_lr_mult: float = 10.0
    weight_decay: float = 0.01
    schedule: ScheduleName = "linear"
    poly_power: float = 0.9
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optim.optimizer: expected one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULE_POWERS:
            raise ValueError(f"optim.schedule: expected one of {sorted(SCHEDULE_POWERS)}, got {self.schedule!r}")
        if self.encoder_lr < 0 or self.decoder_lr_mult < 0:
            raise ValueError("optim.encoder_lr and optim.decoder_lr_mult must be >= 0")

    def power(self) -> float:
        """Decay exponent of the configured schedule."""
        fixed = SCHEDULE_POWERS[self.schedule]
        return self.poly_power if fixed is None else fixed


def param_groups(
    encoder_params: Iterable[nn.Parameter], other_params: Iterable[nn.Parameter], config: OptimConfig
) -> list[dict]:
    """Two groups: ``encoder`` at ``encoder_lr``, ``decoder`` (decoder and heads) at 10x.

    Frozen parameters (``requires_grad=False``) are left out; empty groups are dropped.
    """
    groups = [
        {"name": "encoder", "params": [p for p in encoder_params if p.requires_grad], "lr": config.encoder_lr},
        {
            "name": "decoder",
            "params": [p for p in other_params if p.requires_grad],
            "lr": config.encoder_lr * config.decoder_lr_mult,
        },
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(groups: list[dict], config: OptimConfig, total_steps: int) -> dict:
    """Optimiser + per-step LambdaLR schedule in Lightning's ``configure_optimizers`` format."""
    if not groups:
        raise ValueError("no trainable parameters: every parameter of the model is frozen")
    optimizer = OPTIMIZERS[config.optimizer](groups, config.weight_decay)
    power = config.power()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_factor(step, total_steps, config.warmup_steps, power)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
