"""The built-in plugin, and the one table of component kinds.

:data:`KINDS` is the table every registry is built from: for each kind, the hook that registers
it, its short name, and the real base class every registered class must subclass. The built-in
plugin registers the toolkit's own classes through the same hooks as third-party plugins.

This module names classes of every component package (models, data, losses, perturbations,
metrics, inference), so it sits at the top of the package, beside the tasks: nothing but the CLI
imports it. The plugin manager (:mod:`da_toolkit.plugins`, below every component package) loads it
by name, like any other plugin. It registers its classes as references (:data:`BUILTIN_CLASSES`):
a class, and the base class of its kind, are imported when the class is first used, so listing
the components (``da-toolkit plugins``) imports neither torch, torchmetrics nor Lightning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from da_toolkit.hookspecs import hookimpl


@dataclass(frozen=True)
class Kind:
    """One kind of component: registered through ``hook``, listed as ``name``.

    ``load_base`` returns the real base class (imported on first use, see the module docstring).
    """

    hook: str
    name: str
    load_base: Callable[[], type]

    @property
    def base(self) -> type:
        """The class every component of this kind must subclass."""
        return self.load_base()


def _encoder_base() -> type:
    from da_toolkit.models.encoders.base import Encoder

    return Encoder


def _decoder_base() -> type:
    from da_toolkit.models.decoders.base import Decoder

    return Decoder


def _module_base() -> type:
    from torch import nn

    return nn.Module


def _dataset_base() -> type:
    from torch.utils.data import Dataset

    return Dataset


def _metric_base() -> type:
    from torchmetrics import Metric

    return Metric


def _writer_base() -> type:
    from lightning.pytorch.callbacks import BasePredictionWriter

    return BasePredictionWriter


#: The kinds of components, in listing order. Perturbations and losses have no common base of
#: their own (CutMix is not photometric; losses have two call signatures, checked by
#: ``losses.contract``), data sources are map-style ``DataSource``s or streaming
#: ``IterableDataset``s, so these kinds check the torch base they all share.
KINDS: tuple[Kind, ...] = (
    Kind("da_toolkit_encoders", "encoders", _encoder_base),
    Kind("da_toolkit_decoders", "decoders", _decoder_base),
    Kind("da_toolkit_perturbations", "perturbations", _module_base),
    Kind("da_toolkit_losses", "losses", _module_base),
    Kind("da_toolkit_datasources", "datasources", _dataset_base),
    Kind("da_toolkit_metrics", "metrics", _metric_base),
    Kind("da_toolkit_writers", "writers", _writer_base),
)


#: The toolkit's own components, by kind: name -> ``"module:ClassName"``. References, not classes:
#: listing or looking up names imports nothing (``da-toolkit plugins`` imports neither torch nor
#: Lightning); a class is imported when it is used. Each package's ``BUILTIN_*`` mapping
#: (``da_toolkit.losses.BUILTIN_LOSSES``...) names the same classes (a test keeps them equal).
BUILTIN_CLASSES: dict[str, dict[str, str | type]] = {
    "encoders": {
        "dinov2": "da_toolkit.models.encoders.dinov2:DINOv2Encoder",
        "timm": "da_toolkit.models.encoders.timm_encoder:TimmEncoder",
        "convnext": "da_toolkit.models.encoders.timm_encoder:ConvNeXtEncoder",
        "smp_encoder": "da_toolkit.models.encoders.smp_encoder:SmpEncoder",
    },
    "decoders": {
        "dpt": "da_toolkit.models.decoders.dpt:DPTDecoder",
        "smp_decoder": "da_toolkit.models.decoders.smp_decoder:SmpDecoder",
    },
    "perturbations": {
        "color_jitter": "da_toolkit.perturb.colour:ColorJitter",
        "grayscale": "da_toolkit.perturb.colour:RandomGrayscale",
        "gaussian_blur": "da_toolkit.perturb.colour:GaussianBlur",
        "photometric_sequence": "da_toolkit.perturb.compose:PhotometricSequence",
        "strong_photometric": "da_toolkit.perturb.compose:StrongPhotometric",
        "cutmix": "da_toolkit.perturb.cutmix:CutMix",
    },
    "losses": {
        "affine_invariant": "da_toolkit.losses.affine_invariant:AffineInvariantLoss",
        "gradient_matching": "da_toolkit.losses.gradient_matching:GradientMatchingLoss",
        "cutmix_affine_invariant": "da_toolkit.losses.cutmix:CutMixAffineInvariantLoss",
        "cutmix_region": "da_toolkit.losses.cutmix:CutMixRegionLoss",
        "feature_alignment": "da_toolkit.losses.feature_alignment:FeatureAlignmentLoss",
        "segmentation": "da_toolkit.losses.segmentation:SegmentationLoss",
        "segmentation_head": "da_toolkit.losses.segmentation:SegmentationHead",
        "silog": "da_toolkit.losses.silog:SiLogLoss",
        "weighted": "da_toolkit.losses.combined:WeightedLosses",
    },
    "datasources": {
        "synthetic": "da_toolkit.data.sources.synthetic:SyntheticScenes",
        "image_folder": "da_toolkit.data.sources.folders:ImageFolder",
        "paired_folder": "da_toolkit.data.sources.folders:PairedFolder",
        "nyuv2": "da_toolkit.data.sources.nyu:NYUv2",
        "kitti": "da_toolkit.data.sources.kitti:KITTIDepth",
        "diode": "da_toolkit.data.sources.diode:DIODE",
        "sintel": "da_toolkit.data.sources.sintel:Sintel",
        "eth3d": "da_toolkit.data.sources.eth3d:ETH3D",
        "hypersim": "da_toolkit.data.sources.hypersim:Hypersim",
        "vkitti2": "da_toolkit.data.sources.vkitti2:VirtualKITTI2",
        "pseudo_labels": "da_toolkit.data.sources.pseudo:PseudoLabelSource",
        "sharded_images": "da_toolkit.data.shards.sources:ShardedImages",
        "sharded_rgbd": "da_toolkit.data.shards.sources:ShardedRGBD",
        "pseudo_label_shards": "da_toolkit.data.shards.pseudo:PseudoLabelShards",
    },
    "metrics": {
        "depth_metrics": "da_toolkit.metrics.depth_metrics:DepthMetrics",
    },
    "writers": {
        "npy": "da_toolkit.inference.writers:NpyWriter",
        "png16": "da_toolkit.inference.writers:Png16Writer",
        "colormap": "da_toolkit.inference.writers:ColormapWriter",
        "ply": "da_toolkit.inference.writers:PlyWriter",
        "video": "da_toolkit.inference.video:DepthVideoWriter",
    },
}


@hookimpl
def da_toolkit_encoders() -> dict[str, str | type]:
    """The built-in encoders (``dinov2``, ``timm``, ``convnext``, ...)."""
    return dict(BUILTIN_CLASSES["encoders"])


@hookimpl
def da_toolkit_decoders() -> dict[str, str | type]:
    """The built-in decoders (``dpt``, ...)."""
    return dict(BUILTIN_CLASSES["decoders"])


@hookimpl
def da_toolkit_perturbations() -> dict[str, str | type]:
    """The built-in perturbations (photometric ones and CutMix)."""
    return dict(BUILTIN_CLASSES["perturbations"])


@hookimpl
def da_toolkit_losses() -> dict[str, str | type]:
    """The built-in losses."""
    return dict(BUILTIN_CLASSES["losses"])


@hookimpl
def da_toolkit_datasources() -> dict[str, str | type]:
    """The built-in data sources (datasets, folders, synthetic scenes; streaming shards)."""
    return dict(BUILTIN_CLASSES["datasources"])


@hookimpl
def da_toolkit_metrics() -> dict[str, str | type]:
    """The built-in metrics."""
    return dict(BUILTIN_CLASSES["metrics"])


@hookimpl
def da_toolkit_writers() -> dict[str, str | type]:
    """The built-in prediction writers (output formats of ``da-toolkit predict``)."""
    return dict(BUILTIN_CLASSES["writers"])
