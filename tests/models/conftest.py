"""Shared helpers for model tests: an independent bicubic reference and weight perturbation."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch


def _cubic(t: float, a: float = -0.75) -> np.ndarray:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for a fractional position t (Keys, a=-0.75)."""

    def k(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    return np.array([k(1 + t), k(t), k(1 - t), k(2 - t)])


def _resample_1d(arr: np.ndarray, out_len: int, scale_factor: float, axis: int) -> np.ndarray:
    n = arr.shape[axis]
    arr = np.moveaxis(arr, axis, 0)
    out = np.zeros((out_len,) + arr.shape[1:], dtype=np.float64)
    for i in range(out_len):
        src = (i + 0.5) / scale_factor - 0.5  # half-pixel centres, align_corners=False
        x0 = math.floor(src)
        w = _cubic(src - x0)
        for j, wj in zip(range(x0 - 1, x0 + 3), w):
            out[i] += wj * arr[min(max(j, 0), n - 1)]  # border replicate
    return np.moveaxis(out, 0, axis)


def official_pos_embed_reference(pos: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """The official DINOv2 rule written independently in numpy.

    ``pos``: ``(1 + N*N, C)`` with the class position first. The patch grid is resampled
    bicubically (a = -0.75, half-pixel centres, replicate border, no antialias) with scale
    factors ``((grid_h + 0.1) / N, (grid_w + 0.1) / N)``; the output keeps ``grid_h x grid_w``.
    """
    side = round(math.sqrt(pos.shape[0] - 1))
    grid = pos[1:].reshape(side, side, -1).astype(np.float64)
    grid = _resample_1d(grid, grid_h, (grid_h + 0.1) / side, axis=0)
    grid = _resample_1d(grid, grid_w, (grid_w + 0.1) / side, axis=1)
    return np.concatenate([pos[:1], grid.reshape(grid_h * grid_w, -1)], axis=0)


@pytest.fixture
def pos_reference() -> Callable[[np.ndarray, int, int], np.ndarray]:
    return official_pos_embed_reference


def perturb_(model: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Perturb every parameter so outputs vary strongly over the image (fresh heads are flat).

    Each tensor gets noise of ``scale`` times its fan-in-based std (``1/sqrt(fan_in)`` for
    matrices/convs, 0.5 for vectors); LayerScale and norm gains stay near 1.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                std = scale / math.sqrt(p[0].numel())
            elif name.endswith(("gamma", "norm1.weight", "norm2.weight", "norm.weight")):
                p.fill_(1.0)
                std = 0.2
            else:
                std = 0.1
            p.add_(torch.randn(p.shape, generator=g) * std)


@pytest.fixture
def perturb() -> Callable[..., None]:
    return perturb_


def calibrate_head_(model: torch.nn.Module, x: torch.Tensor, positive: float = 0.9) -> None:
    """Adjust the last conv so the head's output varies strongly on ``x`` after :func:`perturb_`.

    Relative (ReLU) head: shift the bias so about ``positive`` of the pre-ReLU outputs are > 0.
    Metric (Sigmoid) head: centre the logits on 0 with a standard deviation of 1.5, so the sigmoid
    is not saturated.
    """
    last = model.decoder.scratch.output_conv2[2]
    captured: list[torch.Tensor] = []
    handle = last.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
    with torch.no_grad():
        model(x)
        handle.remove()
        z = captured[0].flatten().float()
        if model.output_kind == "disparity":
            last.bias -= torch.quantile(z, 1 - positive)
        else:
            gain = 1.5 / z.std()
            last.weight.mul_(gain)
            last.bias.mul_(gain).sub_(z.median() * gain)


@pytest.fixture
def calibrate() -> Callable[..., None]:
    return calibrate_head_
