"""Illumination shift of dermatoscope images: white-balance cast, exposure and lens vignetting."""

from __future__ import annotations

import torch
from torch import Tensor

from da_toolkit.perturb.base import (
    Params,
    PhotometricPerturbation,
    bernoulli,
    check_images,
    check_probability,
    uniform,
)


class IlluminationShift(PhotometricPerturbation):
    """Simulate another dermatoscope / light source on each image with probability ``p``.

    ``out = clamp(image * gain[c] * exposure * (1 - vignette * r^2), 0, 1)`` where

    * ``gain`` ``(3,)`` is a colour cast: log-gains ``~ U(-max_cast, max_cast)`` per channel,
      centred so that their mean is 0 (the geometric mean of the gains is 1: a cast, not a
      brightness change);
    * ``exposure ~ U(exposure)``;
    * ``r^2 = (x^2 + y^2) / 2`` with ``x, y`` in ``[-1, 1]`` across the image (0 at the centre,
      1 in the corners) and ``vignette ~ U(vignette)`` the corner darkening.

    Images ``(B,3,H,W)`` float RGB in ``[0,1]`` -> same shape, in ``[0,1]``.
    Params: ``applied`` bool ``(B,)``, ``gain`` ``(B,3)``, ``exposure`` ``(B,)``, ``vignette`` ``(B,)``.

    Args:
        p: probability of perturbing an image.
        max_cast: bound of the per-channel log-gains (0.15 is about +-16 %).
        exposure: range of the global intensity factor.
        vignette: range of the corner darkening (0 = none, 1 = black corners).
        seed: seed of the module's generator (``None``: torch's global RNG).
    """

    def __init__(
        self,
        p: float = 0.5,
        max_cast: float = 0.15,
        exposure: tuple[float, float] = (0.8, 1.2),
        vignette: tuple[float, float] = (0.0, 0.4),
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.p = check_probability("IlluminationShift", p)
        if max_cast < 0:
            raise ValueError(f"IlluminationShift.max_cast={max_cast}: expected >= 0")
        self.max_cast = float(max_cast)
        if not 0.0 < float(exposure[0]) <= float(exposure[1]):
            raise ValueError(f"IlluminationShift.exposure={exposure}: expected a range 0 < low <= high")
        self.exposure = (float(exposure[0]), float(exposure[1]))
        if not 0.0 <= float(vignette[0]) <= float(vignette[1]) <= 1.0:
            raise ValueError(f"IlluminationShift.vignette={vignette}: expected a range 0 <= low <= high <= 1")
        self.vignette = (float(vignette[0]), float(vignette[1]))

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw ``applied``, ``gain``, ``exposure`` and ``vignette`` for ``batch_size`` images."""
        log_gain = uniform(-self.max_cast, self.max_cast, batch_size * 3, generator).view(batch_size, 3)
        log_gain = log_gain - log_gain.mean(dim=1, keepdim=True)
        return {
            "applied": bernoulli(self.p, batch_size, generator),
            "gain": log_gain.exp(),
            "exposure": uniform(*self.exposure, batch_size, generator),
            "vignette": uniform(*self.vignette, batch_size, generator),
        }

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply recorded ``params`` to ``images`` ``(B,3,H,W)``."""
        check_images(type(self).__name__, images)
        b, _, h, w = images.shape
        if params["gain"].shape != (b, 3):
            raise ValueError(f"IlluminationShift: params are for {params['gain'].shape[0]} images, got {b}")
        device, dtype = images.device, images.dtype
        y = torch.linspace(-1.0, 1.0, h, device=device, dtype=dtype)[:, None]
        x = torch.linspace(-1.0, 1.0, w, device=device, dtype=dtype)[None, :]
        r2 = (x * x + y * y) / 2  # (H, W), 0 at the centre, 1 in the corners
        vignette = params["vignette"].to(device=device, dtype=dtype)[:, None, None, None]
        gain = params["gain"].to(device=device, dtype=dtype)[:, :, None, None]
        exposure = params["exposure"].to(device=device, dtype=dtype)[:, None, None, None]
        shifted = (images * gain * exposure * (1 - vignette * r2)).clamp(0.0, 1.0)
        applied = params["applied"].to(device)[:, None, None, None]
        return torch.where(applied, shifted, images)
