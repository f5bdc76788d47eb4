"""Base class of photometric perturbations: sample parameters, then apply them (replayable)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

#: Recorded parameters of one call: tensors (or nested dicts of them) on the CPU.
Params = dict[str, Any]


def process_rank() -> int:
    """Rank of this process in ``torch.distributed`` (0 when not distributed)."""
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class SeededRNG:
    """A lazily created CPU ``torch.Generator`` seeded with ``seed + rank``.

    Created on first use, so under DDP each process gets its own stream (``seed + rank``) and
    ranks do not apply identical perturbations to different images. ``seed=None`` gives ``None``
    (torch's global RNG).
    """

    def __init__(self, seed: int | None) -> None:
        self.seed = None if seed is None else int(seed)
        self._generator: torch.Generator | None = None

    def get(self) -> torch.Generator | None:
        """The generator (``None`` without a seed)."""
        if self.seed is None:
            return None
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed + process_rank())
        return self._generator


def uniform(low: float, high: float, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` samples of ``U(low, high)`` as a float32 CPU tensor ``(n,)``."""
    return low + (high - low) * torch.rand(n, generator=generator)


def bernoulli(p: float, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` draws of a coin with probability ``p`` as a bool CPU tensor ``(n,)``."""
    return torch.rand(n, generator=generator) < p


def check_images(name: str, images: Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is a floating ``(B,3,H,W)`` tensor."""
    if images.dim() != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(
            f"{name}: images must be float (B,3,H,W) RGB in [0,1], got {tuple(images.shape)} {images.dtype}"
        )


def check_probability(name: str, p: float) -> float:
    """Validate a probability in ``[0, 1]``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: p must be in [0, 1], got {p}")
    return float(p)


class PhotometricPerturbation(nn.Module, ABC):
    """A per-sample photometric change of ``(B,3,H,W)`` RGB images in ``[0,1]``.

    ``sample_params(batch_size)`` draws the random parameters (on the CPU, from the module's
    seeded generator, a given ``generator``, or torch's global RNG); ``apply(images, params)``
    applies them deterministically on the images' device. ``forward`` does both and keeps the
    parameters in :attr:`last_params`, so ``apply(images, module.last_params)`` replays a call
    exactly. Parameters are sampled on the CPU, so a seed gives the same perturbation on any
    device; under DDP each rank draws from ``seed + rank`` (see :class:`SeededRNG`).

    Args:
        seed: seed of the module's own generator (``None``: torch's global RNG).
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.rng = SeededRNG(seed)
        self.last_params: Params | None = None

    @abstractmethod
    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Random parameters for a batch of ``batch_size`` images."""

    @abstractmethod
    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply recorded ``params`` to ``images`` ``(B,3,H,W)``; returns ``(B,3,H,W)`` in [0,1]."""

    def forward(
        self,
        images: Tensor,
        params: Params | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Perturb ``images`` ``(B,3,H,W)`` with new (or the given) parameters."""
        check_images(type(self).__name__, images)
        if params is None:
            gen = generator if generator is not None else self.rng.get()
            params = self.sample_params(images.shape[0], gen)
        self.last_params = params
        return self.apply(images, params)


def select(applied: Tensor, changed: Tensor, original: Tensor) -> Tensor:
    """Per-sample choice: ``changed`` where ``applied`` ``(B,)`` is True, else ``original``."""
    return torch.where(applied.to(original.device)[:, None, None, None], changed, original)
