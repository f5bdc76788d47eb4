"""The built-in plugin: registers the core components through the same hooks as third parties."""

from __future__ import annotations

import importlib

from da_toolkit.hookspecs import hookimpl


def _mapping(module: str, attr: str) -> dict[str, type]:
    return dict(getattr(importlib.import_module(module), attr))


@hookimpl
def da_toolkit_encoders() -> dict[str, type]:
    return _mapping("da_toolkit.models.encoders", "BUILTIN_ENCODERS")


@hookimpl
def da_toolkit_decoders() -> dict[str, type]:
    return _mapping("da_toolkit.models.decoders", "BUILTIN_DECODERS")


@hookimpl
def da_toolkit_perturbations() -> dict[str, type]:
    return _mapping("da_toolkit.perturb", "BUILTIN_PERTURBATIONS")


@hookimpl
def da_toolkit_losses() -> dict[str, type]:
    return _mapping("da_toolkit.losses", "BUILTIN_LOSSES")


@hookimpl
def da_toolkit_datasources() -> dict[str, type]:
    return _mapping("da_toolkit.data.sources", "BUILTIN_DATASOURCES")


@hookimpl
def da_toolkit_metrics() -> dict[str, type]:
    return _mapping("da_toolkit.metrics", "BUILTIN_METRICS")


@hookimpl
def da_toolkit_writers() -> dict[str, type]:
    return _mapping("da_toolkit.inference.writers", "BUILTIN_WRITERS")
