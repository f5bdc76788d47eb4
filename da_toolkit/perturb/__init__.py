"""Strong perturbations of unlabeled images, run on the training device after transfer.

Photometric ones (:class:`PhotometricPerturbation`) sample parameters then apply them, and can be
replayed from ``last_params``; :class:`CutMix` returns the mixed batch, the mask and the pairing.
Registered by the built-in plugin under the short names of :data:`BUILTIN_PERTURBATIONS`.
"""

from da_toolkit.perturb.base import Params, PhotometricPerturbation
from da_toolkit.perturb.colour import ColorJitter, GaussianBlur, RandomGrayscale
from da_toolkit.perturb.compose import PhotometricSequence, StrongPhotometric
from da_toolkit.perturb.cutmix import CutMix, CutMixOutput, box_area_fraction, box_mask, mix_with_mask

#: Alias of :class:`StrongPhotometric` (the SPEC 3 composition).
StrongPerturbation = StrongPhotometric

BUILTIN_PERTURBATIONS: dict[str, type] = {
    "color_jitter": ColorJitter,
    "grayscale": RandomGrayscale,
    "gaussian_blur": GaussianBlur,
    "photometric_sequence": PhotometricSequence,
    "strong_photometric": StrongPhotometric,
    "cutmix": CutMix,
}

__all__ = [
    "BUILTIN_PERTURBATIONS",
    "ColorJitter",
    "CutMix",
    "CutMixOutput",
    "GaussianBlur",
    "Params",
    "PhotometricPerturbation",
    "PhotometricSequence",
    "RandomGrayscale",
    "StrongPerturbation",
    "StrongPhotometric",
    "box_area_fraction",
    "box_mask",
    "mix_with_mask",
]
