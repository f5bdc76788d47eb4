"""da-toolkit-dermoscopy: an example third-party da-toolkit plugin for dermoscopy images.

Installing the distribution is enough: its ``da_toolkit`` entry point makes da-toolkit load
:mod:`da_toolkit_dermoscopy.plugin`, which registers

* data source ``dermoscopy_images`` -> :class:`DermoscopyImages` (unlabeled ISIC-style collections);
* perturbation ``hair_artefacts`` -> :class:`HairArtefacts` (simulated hairs);
* perturbation ``illumination_shift`` -> :class:`IlluminationShift` (another light source).
"""

from da_toolkit_dermoscopy.hair import HairArtefacts
from da_toolkit_dermoscopy.illumination import IlluminationShift
from da_toolkit_dermoscopy.source import DermoscopyImages, MetadataError

__version__ = "0.1.0"
__all__ = ["DermoscopyImages", "HairArtefacts", "IlluminationShift", "MetadataError", "__version__"]
