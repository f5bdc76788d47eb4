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
