"""Building the task's DepthModel from a preset name + overrides or from encoder/decoder modules."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn


def build_depth_model(
    preset: str | None,
    model_overrides: dict[str, Any] | None = None,
    encoder: nn.Module | None = None,
    decoder: nn.Module | None = None,
    weights: str | None = None,
    encoder_weights: str | None = None,
) -> nn.Module:
    """A :class:`~da_toolkit.models.depth_model.DepthModel` from one of two descriptions.

    Args:
        preset: a preset name of :mod:`da_toolkit.models.presets` (e.g.
            ``depth-anything-v2-vits``); ``model_overrides`` are passed to
            :func:`da_toolkit.load_model` (e.g. a tiny ViT for tests).
        encoder, decoder: modules (recipes give them as ``class_path`` + ``init_args``); used
            instead of a preset when both are given.
        weights: a full-model weights file (safetensors, official ``.pth``, HF folder, a task
            ``.ckpt``), loaded into the whole model.
        encoder_weights: an encoder-only file (e.g. DINOv2 ``dinov2_vits14_pretrain.pth``, or a
            relative Depth Anything model whose encoder initialises a metric model), loaded after
            ``weights``.
    """
    from da_toolkit.models.depth_model import DepthModel
    from da_toolkit.models.presets import load_model

    if encoder is not None and decoder is not None:
        if preset is not None:
            raise ValueError("give either `preset` or `encoder` + `decoder`, not both")
        model = DepthModel(encoder, decoder)
        if weights is not None:
            from da_toolkit.models.weights import load_weights

            load_weights(model, weights)
    elif encoder is not None or decoder is not None:
        raise ValueError("`encoder` and `decoder` must be given together (or use `preset`)")
    elif preset is not None:
        model = load_model(preset, weights=weights, **dict(model_overrides or {}))
    else:
        raise ValueError("no model: set `preset` (+ `model_overrides`) or `encoder` + `decoder`")
    if encoder_weights is not None:
        from da_toolkit.models.weights import load_encoder_weights

        load_encoder_weights(model.encoder, encoder_weights)
    return model


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy in eval mode with every parameter frozen (teachers, alignment targets)."""
    clone = copy.deepcopy(module)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


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
