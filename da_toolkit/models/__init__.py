"""Model components: encoders, decoders, DepthModel, presets, weights.

Public API: :class:`DepthModel`, :func:`load_model` (presets, local weights, never downloads),
:func:`build_tiny_model` (tests), :class:`ModelConfig` / :func:`build_model`.
"""

from da_toolkit.models.config import ModelConfig, build_model, model_config
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.presets import PRESETS, Preset, PresetModel, load_model
from da_toolkit.models.tiny import build_tiny_model

__all__ = [
    "DepthModel",
    "ModelConfig",
    "PRESETS",
    "Preset",
    "PresetModel",
    "build_model",
    "build_tiny_model",
    "load_model",
    "model_config",
]
