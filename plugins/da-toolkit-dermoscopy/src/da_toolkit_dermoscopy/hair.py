"""Hair-artefact simulation: dark, thin, curved strands drawn over dermoscopy images."""

from __future__ import annotations

import math

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


def _range(name: str, value: tuple[float, float], low: float, high: float | None = None) -> tuple[float, float]:
    a, b = float(value[0]), float(value[1])
    if not (low <= a <= b and (high is None or b <= high)):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"HairArtefacts.{name}={value}: expected a range (low, high) with low <= high in {bound}")
    return a, b


def bezier_points(start: Tensor, control: Tensor, end: Tensor, segments: int) -> Tensor:
    """Points of quadratic Bézier curves: ``(..., 2)`` ends and control -> ``(..., segments+1, 2)``."""
    t = torch.linspace(0.0, 1.0, segments + 1, device=start.device, dtype=start.dtype)[:, None]
    s, c, e = start[..., None, :], control[..., None, :], end[..., None, :]
    return (1 - t) ** 2 * s + 2 * (1 - t) * t * c + t**2 * e


def polyline_distance(points: Tensor, height: int, width: int) -> Tensor:
    """Distance in pixels from every pixel centre to a polyline.

    Args:
        points: ``(B, K+1, 2)`` vertices ``(x, y)`` in pixels (pixel ``(i, j)`` has centre
            ``(j + 0.5, i + 0.5)``).
        height: ``H``, rows of the output grid.
        width: ``W``, columns of the output grid.

    Returns:
        ``(B, H, W)`` distance to the nearest of the ``K`` segments.
    """
    ys = torch.arange(height, device=points.device, dtype=points.dtype) + 0.5
    xs = torch.arange(width, device=points.device, dtype=points.dtype) + 0.5
    px = xs[None, None, :]  # (1, 1, W)
    py = ys[None, :, None]  # (1, H, 1)
    best = torch.full((points.shape[0], height, width), float("inf"), device=points.device, dtype=points.dtype)
    for k in range(points.shape[1] - 1):  # a handful of segments: bounded memory (B, H, W)
        ax, ay = points[:, k, 0, None, None], points[:, k, 1, None, None]
        dx = (points[:, k + 1, 0] - points[:, k, 0])[:, None, None]
        dy = (points[:, k + 1, 1] - points[:, k, 1])[:, None, None]
        length2 = (dx * dx + dy * dy).clamp_min(1e-12)
        t = (((px - ax) * dx + (py - ay) * dy) / length2).clamp(0.0, 1.0)
        dist = torch.hypot(px - (ax + t * dx), py - (ay + t * dy))
        best = torch.minimum(best, dist)
    return best


class HairArtefacts(PhotometricPerturbation):
    """Draw ``n ~ U{count}`` hairs on each image with probability ``p``.

    A hair is a quadratic Bézier curve: centre uniform over the image (positions are fractions of
    width/height), direction uniform, length ``~ U(length)`` times the shorter image side, bent
    sideways by ``~ U(-bend, bend)`` times its length, width ``~ U(width)`` times the shorter side
    (so the look does not depend on resolution; 0.002-0.006 is 1-3 px at 518), dark brown/black
    colour (channel values ``~ U(darkness)`` with a slight red tint) and opacity ``~ U(opacity)``.
    Each hair is composited over the image with an anti-aliased coverage
    ``alpha = opacity * clamp(width_px / 2 + 0.5 - distance_px, 0, 1)``:
    ``out = image * (1 - alpha) + colour * alpha``, hairs in order.

    Images ``(B,3,H,W)`` float RGB in ``[0,1]`` -> same shape, in ``[0,1]``.

    Params (CPU tensors, ``M = count[1]`` hair slots per image): ``applied`` bool ``(B,)``,
    ``count`` long ``(B,)``, ``start``/``control``/``end`` ``(B,M,2)`` curve points ``(x, y)``: the
    midpoint of start and end is a fraction of ``(W, H)``, offsets from it are in units of the
    shorter side (on a square image all three are plain fractions of the side), ``width`` ``(B,M)`` fraction of the shorter side, ``colour`` ``(B,M,3)``,
    ``opacity`` ``(B,M)``. Slot ``m`` of image ``b`` is drawn when ``m < count[b]``.

    Args:
        p: probability that an image gets hairs.
        count: ``(min, max)`` number of hairs per image (inclusive).
        length: hair length range, fraction of the shorter side.
        width: hair width range, fraction of the shorter side.
        bend: maximum sideways bend of the middle control point, fraction of the length.
        darkness: range of the hair colour's channel values.
        opacity: opacity range.
        segments: straight segments per curve when rendering.
        seed: seed of the module's generator (``None``: torch's global RNG).
    """

    def __init__(
        self,
        p: float = 0.5,
        count: tuple[int, int] = (1, 8),
        length: tuple[float, float] = (0.2, 0.8),
        width: tuple[float, float] = (0.002, 0.006),
        bend: float = 0.3,
        darkness: tuple[float, float] = (0.02, 0.25),
        opacity: tuple[float, float] = (0.7, 1.0),
        segments: int = 8,
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        self.p = check_probability("HairArtefacts", p)
        low, high = int(count[0]), int(count[1])
        if not 0 <= low <= high:
            raise ValueError(f"HairArtefacts.count={count}: expected (min, max) with 0 <= min <= max")
        self.count = (low, high)
        self.length = _range("length", length, 0.0)
        self.width = _range("width", width, 0.0)
        if bend < 0:
            raise ValueError(f"HairArtefacts.bend={bend}: expected >= 0")
        self.bend = float(bend)
        self.darkness = _range("darkness", darkness, 0.0, 1.0)
        self.opacity = _range("opacity", opacity, 0.0, 1.0)
        if segments < 1:
            raise ValueError(f"HairArtefacts.segments={segments}: expected >= 1")
        self.segments = int(segments)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None) -> Params:
        """Draw the hairs of ``batch_size`` images (CPU tensors, from ``generator``)."""
        b, m = batch_size, self.count[1]
        n = b * m
        centre = torch.stack([uniform(0.0, 1.0, n, generator), uniform(0.0, 1.0, n, generator)], dim=1)
        angle = uniform(0.0, math.pi, n, generator)
        half = uniform(*self.length, n, generator) / 2
        direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        normal = torch.stack([-direction[:, 1], direction[:, 0]], dim=1)
        offset = uniform(-self.bend, self.bend, n, generator) * 2 * half
        # Offsets from the centre are in units of the shorter side (see apply), so hairs keep their
        # shape on non-square images.
        start = centre - half[:, None] * direction
        end = centre + half[:, None] * direction
        control = centre + offset[:, None] * normal
        base = uniform(*self.darkness, n, generator)
        tint = torch.stack([base * 1.3, base, base * 0.8], dim=1).clamp(0.0, 1.0)  # brownish
        return {
            "applied": bernoulli(self.p, b, generator),
            "count": torch.randint(self.count[0], self.count[1] + 1, (b,), generator=generator),
            "start": start.view(b, m, 2),
            "control": control.view(b, m, 2),
            "end": end.view(b, m, 2),
            "width": uniform(*self.width, n, generator).view(b, m),
            "colour": tint.view(b, m, 3),
            "opacity": uniform(*self.opacity, n, generator).view(b, m),
        }

    def apply(self, images: Tensor, params: Params) -> Tensor:
        """Composite the recorded hairs onto ``images`` ``(B,3,H,W)``."""
        check_images(type(self).__name__, images)
        b, _, h, w = images.shape
        if params["count"].shape[0] != b:
            raise ValueError(f"HairArtefacts: params are for {params['count'].shape[0]} images, got {b}")
        device, dtype = images.device, images.dtype
        short = float(min(h, w))
        scale = torch.tensor([w, h], dtype=dtype)

        def to_pixels(points: Tensor, centre: Tensor) -> Tensor:
            # the hair centre is a fraction of (W, H); offsets from it are in shorter-side units
            return centre * scale + (points - centre) * short

        start, control, end = (params[k].to(dtype) for k in ("start", "control", "end"))
        centre = (start + end) / 2
        curves = bezier_points(to_pixels(start, centre), to_pixels(control, centre), to_pixels(end, centre), self.segments)
        applied = params["applied"].to(device)
        out = images.clamp(0.0, 1.0)
        for slot in range(curves.shape[1]):
            active = applied & (params["count"].to(device) > slot)
            if not bool(active.any()):
                continue
            dist = polyline_distance(curves[:, slot].to(device), h, w)  # (B,H,W) pixels
            half_width = (params["width"][:, slot].to(device=device, dtype=dtype) * short / 2)[:, None, None]
            cover = (half_width + 0.5 - dist).clamp(0.0, 1.0)
            alpha = (cover * params["opacity"][:, slot].to(device=device, dtype=dtype)[:, None, None])
            alpha = (alpha * active[:, None, None].to(dtype))[:, None]  # (B,1,H,W)
            colour = params["colour"][:, slot].to(device=device, dtype=dtype)[:, :, None, None]
            out = out * (1 - alpha) + colour * alpha
        return out.clamp(0.0, 1.0)
