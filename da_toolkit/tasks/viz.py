"""Colourised prediction images for TensorBoard."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def colorize_tensor(depth: Tensor, invert: bool = False) -> Tensor:
    """``depth (H,W)`` -> ``(3,H,W)`` float RGB in ``[0,1]`` (Spectral_r, min/max normalised).

    Use ``invert=True`` for metric depth so near stays hot, as for disparity.
    """
    from da_toolkit.inference.colorize import colorize

    rgb = colorize(depth.detach().float().cpu().numpy(), invert=invert)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255.0


def prediction_panel(image: Tensor, pred: Tensor, target: Tensor | None, invert: bool = False) -> Tensor:
    """Side-by-side panel ``(3,H,k*W)``: input image, prediction, and target if given.

    ``image`` is ``(3,H,W)`` in ``[0,1]``; ``pred``/``target`` are ``(H,W)`` in the same units.
    """
    parts = [image.detach().float().cpu().clamp(0, 1), colorize_tensor(pred, invert)]
    if target is not None:
        parts.append(colorize_tensor(target, invert))
    return torch.cat(parts, dim=2)
