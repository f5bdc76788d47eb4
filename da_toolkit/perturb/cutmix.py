"""CutMix of a batch with a pairing of its own samples; returns the box mask for the loss."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from da_toolkit.perturb.base import Params, SeededRNG, bernoulli, check_probability, uniform


class CutMixOutput(NamedTuple):
    """Result of :class:`CutMix`.

    Attributes:
        mixed: ``(B,C,H,W)`` images, ``u_ab = u_a * M + u_b * (1 - M)``.
        mask: bool ``(B,H,W)``, ``M``: True where the pixel comes from the sample itself
            (``u_a = images[i]``), False inside the pasted box (from ``u_b = images[pairing[i]]``).
            All True for samples that were not mixed.
        pairing: long ``(B,)``, index of the sample ``u_b`` pasted into each sample.
        params: the recorded parameters (replay with ``CutMix.apply``).
    """

    mixed: Tensor
    mask: Tensor
    pairing: Tensor
    params: Params


def mix_with_mask(x: Tensor, mask: Tensor, pairing: Tensor) -> Tensor:
    """Mix any ``(B,...,H,W)`` tensor like the images: ``where(mask, x, x[pairing])``."""
    m = mask.to(x.device)
    while m.dim() < x.dim():
        m = m.unsqueeze(1)
    return torch.where(m, x, x[pairing.to(x.device)])


def box_mask(boxes: Tensor, applied: Tensor, height: int, width: int, device: torch.device) -> Tensor:
    """Bool ``(B,H,W)``, False inside ``boxes`` ``(B,4)`` = (top, left, bottom, right), bottom/right
    exclusive, for the samples flagged in ``applied``; True elsewhere."""
    b = boxes.to(device)
    rows = torch.arange(height, device=device)[None, :, None]
    cols = torch.arange(width, device=device)[None, None, :]
    inside = (
        (rows >= b[:, 0, None, None])
        & (rows < b[:, 2, None, None])
        & (cols >= b[:, 1, None, None])
        & (cols < b[:, 3, None, None])
    )
    return ~(inside & applied.to(device)[:, None, None])


class CutMix(nn.Module):
    """Paste a random box of another sample of the batch into each sample, with probability ``p``.

    Per mixed sample: box area fraction ``~ U(area)`` of ``H*W``, aspect ``w/h ~ U(aspect)``;
    ``h = round(sqrt(A*H*W / aspect))``, ``w = round(sqrt(A*H*W * aspect))`` (at least 1); boxes
    that do not fit in the image are redrawn (up to ``tries`` candidates, then the last one is cut
    to the image); the top-left corner is uniform among the positions that keep it inside.
    ``pairing`` is a random cyclic derangement (no sample is paired with itself when ``B > 1``).
    Parameters are sampled on the CPU (seeded by ``seed`` or a given generator) and applied on
    the images' device; ``apply`` replays them.

    Args:
        p: probability that a sample is mixed (0.5 in SPEC 3).
        area: range of the box area as a fraction of the image (2-40%).
        aspect: range of the box aspect ratio w/h (0.3-3.3).
        seed: seed of the module's generator, offset by the DDP rank (``None``: torch's global RNG).
        tries: candidate boxes drawn per sample for the rejection of boxes that do not fit.
    """

    def __init__(
        self,
        p: float = 0.5,
        area: tuple[float, float] = (0.02, 0.4),
        aspect: tuple[float, float] = (0.3, 3.3),
        seed: int | None = None,
        tries: int = 10,
    ) -> None:
        super().__init__()
        self.p = check_probability("CutMix", p)
        if tries < 1:
            raise ValueError(f"CutMix: tries must be >= 1, got {tries}")
        self.tries = int(tries)
        if not 0.0 < area[0] <= area[1] <= 1.0:
            raise ValueError(f"CutMix: area must satisfy 0 < low <= high <= 1, got {area}")
        if not 0.0 < aspect[0] <= aspect[1]:
            raise ValueError(f"CutMix: aspect must satisfy 0 < low <= high, got {aspect}")
        self.area = (float(area[0]), float(area[1]))
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.rng = SeededRNG(seed)
        self.last_params: Params | None = None

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return f"p={self.p:g}, area={self.area}, aspect={self.aspect}"

    def sample_params(
        self, batch_size: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> Params:
        """``applied`` bool ``(B,)``, ``boxes`` long ``(B,4)`` (top, left, bottom, right), ``pairing`` ``(B,)``."""
        applied = bernoulli(self.p, batch_size, generator)
        n = batch_size * self.tries
        box_area = uniform(*self.area, n, generator).view(batch_size, self.tries) * height * width
        ratio = uniform(*self.aspect, n, generator).view(batch_size, self.tries)
        h_all = torch.sqrt(box_area / ratio).round().clamp_min(1).long()
        w_all = torch.sqrt(box_area * ratio).round().clamp_min(1).long()
        # rejection sampling: the first candidate that fits, else the last one cut to the image
        fits = (h_all <= height) & (w_all <= width)
        first = torch.where(fits.any(dim=1), fits.long().argmax(dim=1), torch.full((batch_size,), self.tries - 1))
        h = h_all.gather(1, first[:, None])[:, 0].clamp(max=height)
        w = w_all.gather(1, first[:, None])[:, 0].clamp(max=width)
        top = (torch.rand(batch_size, generator=generator) * (height - h + 1)).floor().long()
        left = (torch.rand(batch_size, generator=generator) * (width - w + 1)).floor().long()
        top = torch.minimum(top, height - h)
        left = torch.minimum(left, width - w)
        perm = torch.randperm(batch_size, generator=generator)
        pairing = torch.empty_like(perm)
        pairing[perm] = perm.roll(-1)
        boxes = torch.stack([top, left, top + h, left + w], dim=1)
        return {"applied": applied, "boxes": boxes, "pairing": pairing, "size": (height, width)}

    def apply(self, images: Tensor, params: Params) -> CutMixOutput:
        """Mix ``images`` ``(B,C,H,W)`` with recorded ``params``."""
        if images.dim() != 4:
            raise ValueError(f"CutMix: images must be (B,C,H,W), got {tuple(images.shape)}")
        b, _, height, width = images.shape
        if tuple(params["size"]) != (height, width) or params["pairing"].shape[0] != b:
            raise ValueError(
                f"CutMix: params were sampled for batch {params['pairing'].shape[0]} size {tuple(params['size'])}, "
                f"got images of batch {b} size {(height, width)}"
            )
        mask = box_mask(params["boxes"], params["applied"], height, width, images.device)
        pairing = params["pairing"].to(images.device)
        return CutMixOutput(mix_with_mask(images, mask, pairing), mask, pairing, params)

    def forward(
        self, images: Tensor, params: Params | None = None, generator: torch.Generator | None = None
    ) -> CutMixOutput:
        """Mix ``images`` ``(B,C,H,W)`` with new (or the given) parameters."""
        if images.dim() != 4:
            raise ValueError(f"CutMix: images must be (B,C,H,W), got {tuple(images.shape)}")
        if params is None:
            gen = generator if generator is not None else self.rng.get()
            params = self.sample_params(images.shape[0], images.shape[2], images.shape[3], gen)
        self.last_params = params
        return self.apply(images, params)


def box_area_fraction(mask: Tensor) -> Tensor:
    """Fraction of each mask ``(B,H,W)`` that comes from the paired sample ``(B,)``."""
    return (~mask).flatten(1).float().mean(dim=1)


__all__ = ["CutMix", "CutMixOutput", "box_area_fraction", "box_mask", "mix_with_mask"]
