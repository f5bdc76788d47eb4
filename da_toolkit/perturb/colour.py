"""Colour jitter, random grayscale and Gaussian blur through kornia (SPEC 3 defaults)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from da_toolkit.perturb.base import (
    Params,
    PhotometricPerturbation,
    bernoulli,
    check_images,
    check_probability,
    select,
    uniform,
)


def _factor_range(name: str, value: float) -> tuple[float, float]:
    if value < 0:
        raise ValueError(f"ColorJitter: {name} must be >= 0, got {value}")
    return max(0.0, 1.0 - value), 1.0 + value


def _colour_steps() -> tuple[Callable[[Tensor, Tensor], Tensor], ...]:
    """The four colour steps, indexed as in ``params["order"]``: ``fn(images (n,3,H,W), factors (n,))``.

    kornia is imported here, on first use, not with the module: listing or resolving components
    (``da-toolkit plugins``, recipe checks) imports this module without perturbing anything.
    """
    from kornia.enhance import (
        adjust_brightness_accumulative,
        adjust_contrast_with_mean_subtraction,
        adjust_hue,
        adjust_saturation_with_gray_subtraction,
    )

    return (
        lambda x, f: adjust_brightness_accumulative(x, f).clamp(0.0, 1.0),
        lambda x, f: adjust_contrast_with_mean_subtraction(x, f).clamp(0.0, 1.0),
        lambda x, f: adjust_saturation_with_gray_subtraction(x, f).clamp(0.0, 1.0),
        lambda x, f: adjust_hue(x, f),
    )


class ColorJitter(PhotometricPerturbation):
    """torchvision-style colour jitter, applied to each image with probability ``p``.

    Factors per image: brightness, contrast, saturation ``~ U(max(0, 1-v), 1+v)`` and hue
    ``~ U(-hue, hue)`` (in turns of the colour wheel, ``hue <= 0.5``); the four steps run in a
    random order drawn per image, as ``torchvision.transforms.ColorJitter`` applied image by image
    does. Steps are kornia's torchvision-compatible ops (brightness
    multiplies, contrast blends with the grayscale mean, saturation with the grayscale image,
    hue rotates in HSV). Images ``(B,3,H,W)`` in ``[0,1]`` -> same shape, clamped to ``[0,1]``.

    Params: ``applied`` bool ``(B,)``, ``brightness``/``contrast``/``saturation``/``hue``
    float ``(B,)``, ``order`` long ``(B,4)`` (0 brightness, 1 contrast, 2 saturation, 3 hue).
    """

    def __init__(
        self,
        brightness: float = 0.5,
        contrast: float = 0.5,
        saturation: float = 0.5,
        hue: float = 0.25,
        p: float = 0.8,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.ranges = {
            "brightness": _factor_range("brightness", brightness),
            "contrast": _factor_range("contrast", contrast),
            "saturation": _factor_range("saturation", saturation),
        }
        if not 0.0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue must be in [0, 0.5], got {hue}")
        self.hue = float(hue)
        self.p = check_probability("ColorJitter", p)

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        b, c, s = (self.ranges[k][1] - 1.0 for k in ("brightness", "contrast", "saturation"))
        return f"brightness={b:g}, contrast={c:g}, saturation={s:g}, hue={self.hue:g}, p={self.p:g}"

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw the per-image parameters of a batch (replayable with :meth:`apply`)."""
        params: Params = {"applied": bernoulli(self.p, batch_size, generator)}
        for name, (low, high) in self.ranges.items():
            params[name] = uniform(low, high, batch_size, generator)
        params["hue"] = uniform(-self.hue, self.hue, batch_size, generator)
        params["order"] = torch.argsort(torch.rand(batch_size, 4, generator=generator), dim=1)
        return params

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply recorded ``params`` to ``images`` (B,3,H,W) in [0,1]; same shape and range."""
        check_images(type(self).__name__, images)
        device, dtype = images.device, images.dtype

        factors = [params[k].to(device=device, dtype=dtype) for k in ("brightness", "contrast", "saturation")]
        factors.append(params["hue"].to(device=device, dtype=dtype) * (2 * math.pi))
        order = params["order"].cpu()
        if order.shape != (images.shape[0], 4):
            raise ValueError(
                f"ColorJitter: params['order'] must be ({images.shape[0]}, 4), got {tuple(order.shape)}"
            )
        out = images.clamp(0.0, 1.0)
        steps = _colour_steps()
        for position in range(4):
            # the images whose step at this position is `step` (indices come from CPU params: no sync)
            for step, fn in enumerate(steps):
                rows = (order[:, position] == step).nonzero().flatten()
                if rows.numel() == 0:
                    continue
                idx = rows.to(device)
                out = out.index_copy(0, idx, fn(out.index_select(0, idx), factors[step].index_select(0, idx)))
        return select(params["applied"], out.clamp(0.0, 1.0), images)


class RandomGrayscale(PhotometricPerturbation):
    """Replace an image by its luma (ITU-R 601, kornia) in all 3 channels with probability ``p``.

    Images ``(B,3,H,W)`` -> ``(B,3,H,W)``. Params: ``applied`` bool ``(B,)``.
    """

    def __init__(self, p: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.p = check_probability("RandomGrayscale", p)

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return f"p={self.p:g}"

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw the per-image parameters of a batch (replayable with :meth:`apply`)."""
        return {"applied": bernoulli(self.p, batch_size, generator)}

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply recorded ``params`` to ``images`` (B,3,H,W) in [0,1]; same shape and range."""
        check_images(type(self).__name__, images)
        from kornia.color import rgb_to_grayscale  # on first use (see _colour_steps)

        gray = rgb_to_grayscale(images).expand_as(images)
        return select(params["applied"], gray, images)


class GaussianBlur(PhotometricPerturbation):
    """Gaussian blur with ``sigma ~ U(sigma[0], sigma[1])`` pixels, applied with probability ``p``.

    The kernel is square with odd side ``kernel_size`` (default ``2 * ceil(3 * sigma[1]) + 1``;
    13 for sigma up to 2), reflect padding (so images must be larger than half the kernel).
    Images ``(B,3,H,W)`` -> ``(B,3,H,W)``. Params: ``applied`` bool ``(B,)``, ``sigma`` ``(B,)``.
    """

    def __init__(
        self,
        sigma: tuple[float, float] = (0.1, 2.0),
        p: float = 0.5,
        kernel_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        low, high = float(sigma[0]), float(sigma[1])
        if not 0.0 < low <= high:
            raise ValueError(f"GaussianBlur: sigma must be a range 0 < low <= high, got {sigma}")
        self.sigma = (low, high)
        self.p = check_probability("GaussianBlur", p)
        size = kernel_size if kernel_size is not None else 2 * math.ceil(3 * high) + 1
        if size < 1 or size % 2 == 0:
            raise ValueError(f"GaussianBlur: kernel_size must be a positive odd int, got {size}")
        self.kernel_size = int(size)

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return f"sigma={self.sigma}, p={self.p:g}, kernel_size={self.kernel_size}"

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw the per-image parameters of a batch (replayable with :meth:`apply`)."""
        return {
            "applied": bernoulli(self.p, batch_size, generator),
            "sigma": uniform(self.sigma[0], self.sigma[1], batch_size, generator),
        }

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Apply recorded ``params`` to ``images`` (B,3,H,W) in [0,1]; same shape and range."""
        check_images(type(self).__name__, images)
        half = self.kernel_size // 2
        if half >= min(images.shape[-2:]):
            raise ValueError(
                f"GaussianBlur: images {tuple(images.shape[-2:])} are too small for kernel_size "
                f"{self.kernel_size} (each side must exceed {half})"
            )
        sigma = params["sigma"].to(device=images.device, dtype=images.dtype)
        from kornia.filters import gaussian_blur2d  # on first use (see _colour_steps)

        blurred = gaussian_blur2d(images, self.kernel_size, torch.stack([sigma, sigma], dim=1))
        return select(params["applied"], blurred.clamp(0.0, 1.0), images)
