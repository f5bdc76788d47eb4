"""Sequences of photometric perturbations, including the SPEC 3 strong perturbation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from da_toolkit.perturb.base import Params, PhotometricPerturbation, check_images
from da_toolkit.perturb.colour import ColorJitter, GaussianBlur, RandomGrayscale


class PhotometricSequence(PhotometricPerturbation):
    """Apply ``steps`` one after the other; replayable like each step.

    Params: ``{"0": params of steps[0], "1": ...}``. All steps draw from this module's generator
    (or the one given to ``forward``/``sample_params``), so one seed fixes the whole sequence.

    Args:
        steps: the perturbations, in order.
        seed: seed of the sequence's generator.
    """

    def __init__(self, steps: Sequence[PhotometricPerturbation], seed: int | None = None) -> None:
        super().__init__(seed)
        for i, step in enumerate(steps):
            if not isinstance(step, PhotometricPerturbation):
                raise ValueError(
                    f"{type(self).__name__}: step {i} must be a PhotometricPerturbation, got {type(step).__name__}"
                )
        self.steps = nn.ModuleList(steps)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Parameters of every step, keyed by step index (``"0"``, ``"1"``, ...)."""
        return {str(i): step.sample_params(batch_size, generator) for i, step in enumerate(self.steps)}

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply every step with its recorded parameters, in order; (B,3,H,W) in [0,1] -> same."""
        check_images(type(self).__name__, images)
        missing = [str(i) for i in range(len(self.steps)) if str(i) not in params]
        if missing:
            raise ValueError(f"{type(self).__name__}: params lack the entries of steps {missing}")
        out = images
        for i, step in enumerate(self.steps):
            out = step.apply(out, params[str(i)])
        return out


class StrongPhotometric(PhotometricSequence):
    """The strong perturbation of unlabeled images (SPEC 3, from the authors' earlier code).

    ``ColorJitter(brightness, contrast, saturation, hue)`` with probability ``jitter_p``, then
    grayscale with ``grayscale_p``, then Gaussian blur with ``sigma ~ U(blur_sigma)`` and
    probability ``blur_p``. Defaults: ColorJitter(0.5, 0.5, 0.5, 0.25) p=0.8, grayscale p=0.2,
    blur sigma U(0.1, 2.0) p=0.5 (unconfirmed for Depth Anything). CutMix is separate
    (:class:`da_toolkit.perturb.CutMix`). Images ``(B,3,H,W)`` in ``[0,1]`` -> same.
    """

    def __init__(
        self,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        hue: float = 0.25,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        blur_p: float = 0.5,
        blur_kernel_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            [
                ColorJitter(brightness, contrast, saturation, hue, p=jitter_p),
                RandomGrayscale(p=grayscale_p),
                GaussianBlur(sigma=blur_sigma, p=blur_p, kernel_size=blur_kernel_size),
            ],
            seed=seed,
        )
