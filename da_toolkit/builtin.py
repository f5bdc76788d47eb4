"""The built-in plugin, and the one table of component kinds.

:data:`KINDS` is the table every registry is built from: for each kind, the hook that registers
it, its short name, and the real base class every registered class must subclass. The built-in
plugin registers the toolkit's own classes through the same hooks as third-party plugins.

This module names classes of every component package (models, data, losses, perturbations,
metrics, inference), so it sits at the top of the package, beside the tasks: nothing but the CLI
imports it. The plugin manager (:mod:`da_toolkit.plugins`, below every component package) loads it
by name, like any other plugin. Base classes and built-in classes are imported when their kind
is collected, not when this module is imported: looking up an encoder does not import the
metrics (torchmetrics) or the writers (Lightning).
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


@hookimpl
def da_toolkit_encoders() -> dict[str, type]:
    """The built-in encoders (``dinov2``, ``timm``, ``convnext``, ...)."""
    from da_toolkit.models.encoders import BUILTIN_ENCODERS

    return dict(BUILTIN_ENCODERS)


@hookimpl
def da_toolkit_decoders() -> dict[str, type]:
    """The built-in decoders (``dpt``, ...)."""
    from da_toolkit.models.decoders import BUILTIN_DECODERS

    return dict(BUILTIN_DECODERS)


@hookimpl
def da_toolkit_perturbations() -> dict[str, type]:
    """The built-in perturbations (photometric ones and CutMix)."""
    from da_toolkit.perturb import BUILTIN_PERTURBATIONS

    return dict(BUILTIN_PERTURBATIONS)


@hookimpl
def da_toolkit_losses() -> dict[str, type]:
    """The built-in losses."""
    from da_toolkit.losses import BUILTIN_LOSSES

    return dict(BUILTIN_LOSSES)


@hookimpl
def da_toolkit_datasources() -> dict[str, type]:
    """The built-in data sources (datasets, folders, synthetic scenes; streaming shards)."""
    from da_toolkit.data.shards import BUILTIN_SHARD_SOURCES
    from da_toolkit.data.sources import BUILTIN_DATASOURCES

    return {**BUILTIN_DATASOURCES, **BUILTIN_SHARD_SOURCES}


@hookimpl
def da_toolkit_metrics() -> dict[str, type]:
    """The built-in metrics."""
    from da_toolkit.metrics import BUILTIN_METRICS

    return dict(BUILTIN_METRICS)


@hookimpl
def da_toolkit_writers() -> dict[str, type]:
    """The built-in prediction writers (output formats of ``da-toolkit predict``)."""
    from da_toolkit.inference.writers import BUILTIN_WRITERS

    return dict(BUILTIN_WRITERS)
