"""Helpers on the task's model: frozen copies (teachers, alignment targets), unused parameters."""

from __future__ import annotations

import copy

from torch import nn


def freeze(module: nn.Module) -> nn.Module:
    """``module`` itself, in eval mode with every parameter frozen (teachers)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parameter frozen (alignment targets)."""
    return freeze(copy.deepcopy(module))


def freeze_unused_parameters(model: nn.Module, side: int) -> list[str]:
    """Freeze the parameters that no forward pass uses; returns their names.

    DINOv2's ``mask_token`` and the residual unit of DPT's coarsest fusion block (which has no
    skip input, as in the official head) never receive gradients. DDP's default strategy fails on
    such parameters, so they are frozen here after one dry forward/backward on a
    ``(1,3,side,side)`` input (the weights themselves are untouched).
    """
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = [p.grad for _, p in params]
    for _, p in params:
        p.grad = None
    out = model(torch.zeros(1, 3, side, side, device=next(model.parameters()).device))
    out.float().sum().backward()
    unused = [n for n, p in params if p.grad is None]
    for (_, p), grad in zip(params, saved, strict=True):
        p.grad = grad
    for n, p in params:
        if n in unused:
            p.requires_grad_(False)
    return unused
