"""Model components: encoders, decoders, DepthModel, model descriptions, presets, weights.

Public API: :class:`DepthModel`; :func:`load_model` (a preset name, or a self-describing weights
file; never downloads); :func:`describe_model` / :func:`build_model` / :func:`expand_model` /
:func:`preset_description` (a model as data, :mod:`da_toolkit.models.description`);
:func:`model_from_weights`; :func:`build_tiny_model` (tests).
"""

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.description import (
    CHECKPOINT_KEY,
    ModelDescriptionError,
    build_model,
    describe_model,
    expand_model,
    preset_description,
    with_overrides,
)
from da_toolkit.models.loading import (
    encoder_from_loaded,
    load_model,
    model_from_loaded,
    model_from_weights,
)
from da_toolkit.models.preset_table import PRESETS, Preset, get_preset
from da_toolkit.models.tiny import build_tiny_model

__all__ = [
    "CHECKPOINT_KEY",
    "PRESETS",
    "DepthModel",
    "ModelDescriptionError",
    "Preset",
    "build_model",
    "build_tiny_model",
    "describe_model",
    "encoder_from_loaded",
    "expand_model",
    "get_preset",
    "load_model",
    "model_from_loaded",
    "model_from_weights",
    "preset_description",
    "with_overrides",
]
