"""Plugin manager: built-in plugin, entry-point autoload, and the component registry.

Components are registered through the hooks in :mod:`da_toolkit.hookspecs`. The built-in plugin
(:mod:`da_toolkit.builtin`) is registered first; then every entry point of the group
``da_toolkit`` is loaded unless ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1``. Single plugins can be
blocked by name with ``DA_TOOLKIT_BLOCK_PLUGINS=name1,name2``.

A plugin that fails to import (or whose hook raises) is recorded in
:attr:`Registry.failures` and skipped. A name registered twice within a kind is recorded as a
conflict naming both plugins; looking that name up raises :class:`PluginConflictError`, the
other components keep working.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from da_toolkit import hookspecs

AUTOLOAD_ENV = "DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "DA_TOOLKIT_BLOCK_PLUGINS"
ENTRY_POINT_GROUP = "da_toolkit"
BUILTIN_NAME = "builtin"


class PluginError(RuntimeError):
    """Base class of plugin errors."""


class PluginConflictError(PluginError):
    """A component name registered by two plugins."""


class UnknownComponentError(PluginError, KeyError):
    """A component name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Component:
    """One registered component."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str | None


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be used: import error, hook error or name conflict."""

    plugin: str
    distribution: str | None
    error: str


@dataclass
class Registry:
    """Components by kind and name, with the failures met while collecting them."""

    components: dict[str, dict[str, Component]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    conflicts: dict[tuple[str, str], list[Component]] = field(default_factory=dict)

    def kind(self, kind: str) -> dict[str, Component]:
        """All components of one kind (``encoders``, ``losses``, ...), by name."""
        if kind not in hookspecs.KINDS.values():
            raise UnknownComponentError(
                f"unknown component kind {kind!r}; expected one of {sorted(hookspecs.KINDS.values())}"
            )
        return self.components.get(kind, {})

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` in ``kind``; errors list close matches."""
        if (kind, name) in self.conflicts:
            owners = " and ".join(f"plugin {c.plugin!r}" for c in self.conflicts[(kind, name)])
            raise PluginConflictError(f"{kind} name {name!r} is registered by both {owners}")
        found = self.kind(kind).get(name)
        if found is None:
            names = sorted(self.kind(kind))
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownComponentError(
                f"no {kind} component named {name!r}{hint} (registered: {', '.join(names) or 'none'})"
            )
        return found.cls

    def find_class(self, cls: type) -> Component | None:
        """The registration of a class, if any."""
        for comps in self.components.values():
            for comp in comps.values():
                if comp.cls is cls:
                    return comp
        return None


def _blocked() -> set[str]:
    return {n.strip() for n in os.environ.get(BLOCK_ENV, "").split(",") if n.strip()}


def _autoload_disabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _dist_name(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) if dist is not None else None


def build_plugin_manager(
    entry_points: Iterable[Any] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> tuple[pluggy.PluginManager, list[PluginFailure], dict[str, str | None]]:
    """Create a plugin manager with the built-in plugin and the third-party ones.

    Args:
        entry_points: objects with ``name``, ``load()`` and optionally ``dist`` (as returned by
            :func:`importlib.metadata.entry_points`); ``None`` reads the installed ones of the
            ``da_toolkit`` group (unless autoload is disabled).
        extra_plugins: ``(name, module_or_object)`` pairs registered directly (tests, scripts).

    Returns:
        The manager, the import failures, and the distribution of each plugin name.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    dists: dict[str, str | None] = {BUILTIN_NAME: "da-toolkit"}
    pm.register(importlib.import_module("da_toolkit.builtin"), name=BUILTIN_NAME)

    if entry_points is None:
        entry_points = [] if _autoload_disabled() else metadata.entry_points(group=ENTRY_POINT_GROUP)
    blocked = _blocked()
    for ep in entry_points:
        name = ep.name
        if name in blocked or name == BUILTIN_NAME or pm.has_plugin(name):
            continue
        dist = _dist_name(ep)
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import error must not break the toolkit
            failures.append(PluginFailure(name, dist, f"{type(exc).__name__}: {exc}"))
            continue
        pm.register(plugin, name=name)
        dists[name] = dist
    for name, plugin in extra_plugins:
        if name not in blocked:
            pm.register(plugin, name=name)
            dists.setdefault(name, None)
    return pm, failures, dists


def collect(
    pm: pluggy.PluginManager,
    failures: list[PluginFailure] | None = None,
    dists: dict[str, str | None] | None = None,
) -> Registry:
    """Call every hook of every plugin and build the registry."""
    registry = Registry(failures=list(failures or []))
    dists = dists or {}
    for hook_name, kind in hookspecs.KINDS.items():
        comps = registry.components.setdefault(kind, {})
        # builtin first so that its names win over later clashing plugins
        impls = sorted(
            getattr(pm.hook, hook_name).get_hookimpls(), key=lambda i: i.plugin_name != BUILTIN_NAME
        )
        for impl in impls:
            plugin = impl.plugin_name
            try:
                mapping = impl.function()
                if not isinstance(mapping, dict):
                    raise TypeError(f"{hook_name} must return a dict name -> class, got {type(mapping).__name__}")
            except Exception as exc:  # noqa: BLE001
                registry.failures.append(
                    PluginFailure(plugin, dists.get(plugin), f"{hook_name}: {type(exc).__name__}: {exc}")
                )
                continue
            for name, cls in mapping.items():
                comp = Component(kind, name, cls, plugin, dists.get(plugin))
                if name in comps and comps[name].cls is not cls:
                    first = comps[name]
                    registry.conflicts.setdefault((kind, name), [first]).append(comp)
                    registry.failures.append(
                        PluginFailure(
                            plugin,
                            dists.get(plugin),
                            f"{kind} name {name!r} is registered by both plugin {first.plugin!r} "
                            f"and plugin {plugin!r}",
                        )
                    )
                    continue
                comps[name] = comp
    return registry


_REGISTRY: Registry | None = None


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry (built on first use)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        pm, failures, dists = build_plugin_manager()
        _REGISTRY = collect(pm, failures, dists)
    return _REGISTRY


def registry(kind: str) -> dict[str, type]:
    """Mapping name -> class of one kind from the process-wide registry."""
    return {name: comp.cls for name, comp in get_registry().kind(kind).items()}


def get_component(kind: str, name: str) -> type:
    """The class registered as ``name`` in ``kind`` (errors list close matches)."""
    return get_registry().get(kind, name)


def reset() -> None:
    """Forget the process-wide registry (tests)."""
    global _REGISTRY
    _REGISTRY = None
