"""The plugin module named by the ``da_toolkit`` entry point: registers this package's components.

Keep this module cheap to import: da-toolkit imports it whenever it builds its registry.
"""

from __future__ import annotations

from da_toolkit import hookimpl

from da_toolkit_dermoscopy.hair import HairArtefacts
from da_toolkit_dermoscopy.illumination import IlluminationShift
from da_toolkit_dermoscopy.source import DermoscopyImages


@hookimpl
def da_toolkit_datasources() -> dict[str, type]:
    """Data sources: ``dermoscopy_images`` (ISIC-style folder + metadata CSV, unlabeled)."""
    return {"dermoscopy_images": DermoscopyImages}


@hookimpl
def da_toolkit_perturbations() -> dict[str, type]:
    """Perturbations: ``hair_artefacts`` (dark curved strands) and ``illumination_shift``
    (colour cast, exposure, vignetting); both replayable."""
    return {"hair_artefacts": HairArtefacts, "illumination_shift": IlluminationShift}
