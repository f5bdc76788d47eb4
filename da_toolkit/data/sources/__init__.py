"""Data sources (registered by the built-in plugin under the short names below).

Every source is a map-style dataset of sample dicts (``docs/architecture.md``). Unreadable files
raise :class:`da_toolkit.data.errors.SampleReadError` naming the file; the data module skips
them with a warning (default) or re-raises (strict mode).
"""

from da_toolkit.data.sources.base import DataSource, make_sample
from da_toolkit.data.sources.diode import DIODE
from da_toolkit.data.sources.eth3d import ETH3D
from da_toolkit.data.sources.folders import ImageFolder, PairedFolder
from da_toolkit.data.sources.hypersim import Hypersim
from da_toolkit.data.sources.kitti import KITTIDepth
from da_toolkit.data.sources.nyu import NYUv2
from da_toolkit.data.sources.pseudo import PseudoLabelSource
from da_toolkit.data.sources.sintel import Sintel
from da_toolkit.data.sources.synthetic import SyntheticScenes
from da_toolkit.data.sources.vkitti2 import VirtualKITTI2

BUILTIN_DATASOURCES: dict[str, type] = {
    "synthetic": SyntheticScenes,
    "image_folder": ImageFolder,
    "paired_folder": PairedFolder,
    "nyuv2": NYUv2,
    "kitti": KITTIDepth,
    "diode": DIODE,
    "sintel": Sintel,
    "eth3d": ETH3D,
    "hypersim": Hypersim,
    "vkitti2": VirtualKITTI2,
    "pseudo_labels": PseudoLabelSource,
}
# The streaming sources over WebDataset tar shards (docs/scale.md) are registered from
# da_toolkit.data.shards.BUILTIN_SHARD_SOURCES: they import base.py, so this package does not
# import them (no import cycle between the packages).

__all__ = [
    "BUILTIN_DATASOURCES",
    "DIODE",
    "ETH3D",
    "DataSource",
    "Hypersim",
    "ImageFolder",
    "KITTIDepth",
    "NYUv2",
    "PairedFolder",
    "PseudoLabelSource",
    "Sintel",
    "SyntheticScenes",
    "VirtualKITTI2",
    "make_sample",
]
