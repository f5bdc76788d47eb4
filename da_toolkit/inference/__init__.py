"""Inference: Predictor, prediction writers, video, export.

* :class:`~da_toolkit.inference.predictor.Predictor` - batched Python inference;
* :class:`~da_toolkit.inference.task.DepthPredictionTask` and
  :class:`~da_toolkit.inference.data.InferenceData` - ``da-toolkit predict`` (LightningCLI);
* :mod:`~da_toolkit.inference.writers` - output formats (``BUILTIN_WRITERS``);
* :mod:`~da_toolkit.inference.video` - frames, temporal smoothing, depth videos;
* :mod:`~da_toolkit.inference.export` - ONNX export and the onnxruntime runner.

Heavy modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Predictor": "da_toolkit.inference.predictor",
    "PredictionItem": "da_toolkit.inference.items",
    "DepthPredictionTask": "da_toolkit.inference.task",
    "InferenceData": "da_toolkit.inference.data",
    "TemporalSmoother": "da_toolkit.inference.video",
    "export_onnx": "da_toolkit.inference.export",
    "OnnxDepthModel": "da_toolkit.inference.export",
}

__all__ = [
    "DepthPredictionTask",
    "InferenceData",
    "OnnxDepthModel",
    "PredictionItem",
    "Predictor",
    "TemporalSmoother",
    "export_onnx",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'da_toolkit.inference' has no attribute {name!r}")
