"""The plugin module named by the ``da_toolkit`` entry point: registers this package's components.

Keep this module cheap to import: da-toolkit imports it whenever it builds its registry.
"""

from __future__ import annotations

from da_toolkit import hookimpl
from da_toolkit_dermoscopy.encoder import LesionCNN
from da_toolkit_dermoscopy.hair import HairArtefacts
from da_toolkit_dermoscopy.illumination import IlluminationShift
from da_toolkit_dermoscopy.losses import CutMixScaleShiftL1Loss, ScaleShiftL1Loss
from da_toolkit_dermoscopy.rgbd import RGBDFolder
from da_toolkit_dermoscopy.source import DermoscopyImages


@hookimpl
def da_toolkit_encoders() -> dict[str, type]:
    """Encoders: ``dermoscopy_cnn`` (a small 4-level CNN pyramid, strides 4-32)."""
    return {"dermoscopy_cnn": LesionCNN}


@hookimpl
def da_toolkit_losses() -> dict[str, type]:
    """Losses: ``dermoscopy_scale_shift_l1`` (labeled form) and its CutMix-aware form
    ``dermoscopy_cutmix_scale_shift_l1`` (the student's unlabeled loss)."""
    return {"dermoscopy_scale_shift_l1": ScaleShiftL1Loss, "dermoscopy_cutmix_scale_shift_l1": CutMixScaleShiftL1Loss}


@hookimpl
def da_toolkit_datasources() -> dict[str, type]:
    """Data sources: ``dermoscopy_images`` (ISIC-style folder + metadata CSV, unlabeled) and
    ``dermoscopy_rgbd`` (labeled RGB + 16-bit millimetre depth PNG folders)."""
    return {"dermoscopy_images": DermoscopyImages, "dermoscopy_rgbd": RGBDFolder}


@hookimpl
def da_toolkit_perturbations() -> dict[str, type]:
    """Perturbations: ``hair_artefacts`` (dark curved strands) and ``illumination_shift``
    (colour cast, exposure, vignetting); both replayable."""
    return {"hair_artefacts": HairArtefacts, "illumination_shift": IlluminationShift}
