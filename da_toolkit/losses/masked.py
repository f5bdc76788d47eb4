"""Masked per-sample reductions for depth losses (public: plugin losses use them too).

Every function works on a batch at once: ``x``/``mask`` are ``(B, ...)`` (usually ``(B,H,W)``),
``mask`` is bool with True = valid. Per-sample results are ``(B,)``; a sample without any valid
element gives 0. :func:`mean_over_samples` turns per-sample losses into the scalar a loss
returns, so that a batch without valid pixels gives a zero that still backpropagates.

Example (a masked L1 loss with the toolkit's conventions)::

    mask = check_depth_inputs("MyL1", pred, target, mask)
    per_sample = masked_mean((pred - target).abs(), mask)     # (B,)
    return mean_over_samples(per_sample, mask.flatten(1).any(dim=1))
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_depth_inputs", "masked_mean", "masked_median", "mean_over_samples", "upcast"]


def check_depth_inputs(name: str, pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    """Validate ``pred``/``target`` ``(B,H,W)`` and return a bool mask ``(B,H,W)``.

    ``mask=None`` means every pixel is valid. Raises ``ValueError`` naming ``name`` and the field.
    """
    if pred.dim() != 3:
        raise ValueError(f"{name}: pred must be (B,H,W), got shape {tuple(pred.shape)}")
    if target.shape != pred.shape:
        raise ValueError(
            f"{name}: target must have the shape of pred {tuple(pred.shape)}, got {tuple(target.shape)}"
        )
    if mask is None:
        return torch.ones_like(pred, dtype=torch.bool)
    if mask.shape != pred.shape:
        raise ValueError(
            f"{name}: mask must have the shape of pred {tuple(pred.shape)}, got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"{name}: mask must be a bool tensor (True = valid), got dtype {mask.dtype}")
    return mask


def upcast(x: Tensor) -> Tensor:
    """``x`` in float32 if it is float16/bfloat16 (mixed precision), else unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def masked_median(x: Tensor, mask: Tensor) -> Tensor:
    """Per-sample median of ``x`` ``(B,...)`` over ``mask`` ``(B,...)``; returns ``(B,)``.

    For an even count this is the *lower* median (torch's convention). Samples without any
    valid element get 0.
    """
    flat = x.reshape(x.shape[0], -1)
    m = mask.reshape(mask.shape[0], -1)
    med = torch.nanmedian(flat.masked_fill(~m, float("nan")), dim=1).values
    return torch.nan_to_num(med, nan=0.0)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per-sample mean of ``x`` ``(B,...)`` over ``mask``; ``(B,)``, 0 for empty samples."""
    flat = x.reshape(x.shape[0], -1)
    m = mask.reshape(mask.shape[0], -1)
    count = m.sum(dim=1)
    total = torch.where(m, flat, torch.zeros_like(flat)).sum(dim=1)
    return total / count.clamp_min(1).to(flat.dtype)


def mean_over_samples(per_sample: Tensor, has_valid: Tensor) -> Tensor:
    """Mean of ``per_sample`` ``(B,)`` over the samples flagged in ``has_valid`` ``(B,)``.

    With no flagged sample the result is 0, still attached to the graph of ``per_sample`` (the
    ``where`` keeps it), so ``backward()`` works and gives zero gradients. No host sync, and
    non-finite values of unflagged samples do not leak into the result.
    """
    n = has_valid.sum().clamp_min(1).to(per_sample.dtype)
    kept = torch.where(has_valid, per_sample, torch.zeros_like(per_sample))
    return kept.sum() / n
