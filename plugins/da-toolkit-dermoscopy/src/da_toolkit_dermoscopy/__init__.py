"""da-toolkit-dermoscopy: an example third-party da-toolkit plugin for dermoscopy images.

Installing the distribution is enough: its ``da_toolkit`` entry point makes da-toolkit load
:mod:`da_toolkit_dermoscopy.plugin`, which registers

* encoder ``dermoscopy_cnn`` -> :class:`LesionCNN` (4-level CNN pyramid);
* losses ``dermoscopy_scale_shift_l1`` -> :class:`ScaleShiftL1Loss` and
  ``dermoscopy_cutmix_scale_shift_l1`` -> :class:`CutMixScaleShiftL1Loss` (CutMix-aware);
* data source ``dermoscopy_images`` -> :class:`DermoscopyImages` (unlabeled ISIC-style collections);
* data source ``dermoscopy_rgbd`` -> :class:`RGBDFolder` (labeled RGB + millimetre depth PNGs);
* perturbation ``hair_artefacts`` -> :class:`HairArtefacts` (simulated hairs);
* perturbation ``illumination_shift`` -> :class:`IlluminationShift` (another light source).
"""

from da_toolkit_dermoscopy.encoder import LesionCNN
from da_toolkit_dermoscopy.hair import HairArtefacts
from da_toolkit_dermoscopy.illumination import IlluminationShift
from da_toolkit_dermoscopy.losses import (
    CutMixScaleShiftL1Loss,
    ScaleShiftL1Loss,
    align_scale_shift,
)
from da_toolkit_dermoscopy.rgbd import RGBDFolder
from da_toolkit_dermoscopy.source import DermoscopyImages, MetadataError

__version__ = "0.1.0"
__all__ = [
    "CutMixScaleShiftL1Loss",
    "DermoscopyImages",
    "HairArtefacts",
    "IlluminationShift",
    "LesionCNN",
    "MetadataError",
    "RGBDFolder",
    "ScaleShiftL1Loss",
    "__version__",
    "align_scale_shift",
]
