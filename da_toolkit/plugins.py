"""Plugin manager: built-in plugin, entry-point autoload, and the component registry.

Components are registered through the hooks in :mod:`da_toolkit.hookspecs`. The built-in plugin
(:mod:`da_toolkit.builtin`) is registered first, exactly like any other plugin; then every entry
point of the group ``da_toolkit`` is loaded, unless ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1``.

Environment variables (read each time a plugin manager is built):

* ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1``: do not load third-party entry points.
* ``DA_TOOLKIT_BLOCK_PLUGINS=name1,name2``: never load these plugins (entry-point names, or the
  module paths given in ``DA_TOOLKIT_PLUGINS``). ``builtin`` cannot be blocked.
* ``DA_TOOLKIT_PLUGINS=pkg.module,other.module``: import these modules as plugins, even when
  autoload is disabled (like ``PYTEST_PLUGINS``).

Nothing a plugin does can break the toolkit: a plugin that fails to import, that pluggy refuses
(bad hook signature), whose hook raises or returns something else than a mapping, or that
registers a value that is not a class of the right base is recorded in :attr:`Registry.failures`
(with its name and distribution) and skipped; the other plugins keep working. A name registered
twice within a kind is a conflict naming both plugins: it is listed, and looking it up raises
:class:`PluginConflictError`, while every other name keeps working.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from da_toolkit import hookspecs

AUTOLOAD_ENV = "DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD"
BLOCK_ENV = "DA_TOOLKIT_BLOCK_PLUGINS"
EXTRA_ENV = "DA_TOOLKIT_PLUGINS"
ENTRY_POINT_GROUP = "da_toolkit"
BUILTIN_NAME = "builtin"
BUILTIN_DISTRIBUTION = "da-toolkit"


class PluginError(RuntimeError):
    """Base class of plugin errors."""


class PluginConflictError(PluginError):
    """A component name registered by two plugins."""


class UnknownComponentError(PluginError, KeyError):
    """A component name (or kind) that no plugin registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Component:
    """One registered component: ``cls`` registered as ``name`` in ``kind`` by ``plugin``."""

    kind: str
    name: str
    cls: type
    plugin: str
    distribution: str | None

    @property
    def class_path(self) -> str:
        """Import path of the class (``module.QualName``), as used by recipes' ``class_path``."""
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or part of one) that could not be used: import error, hook error, conflict..."""

    plugin: str
    distribution: str | None
    error: str


@dataclass
class Registry:
    """Components by kind and name, with the failures met while collecting them.

    ``components[kind][name]`` holds the first registration of a name; a name registered again by
    another plugin is listed in ``conflicts[(kind, name)]`` (all registrations, first included).
    """

    components: dict[str, dict[str, Component]] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    conflicts: dict[tuple[str, str], list[Component]] = field(default_factory=dict)
    plugins: dict[str, str | None] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)

    def kind(self, kind: str) -> dict[str, Component]:
        """All components of one kind (``encoders``, ``losses``, ...), by name, conflicts included."""
        if kind not in hookspecs.KINDS.values():
            raise UnknownComponentError(
                f"unknown component kind {kind!r}; expected one of {sorted(hookspecs.KINDS.values())}"
            )
        return self.components.get(kind, {})

    def usable(self, kind: str) -> dict[str, type]:
        """Mapping name -> class of one kind, without the conflicting names."""
        return {
            name: comp.cls
            for name, comp in self.kind(kind).items()
            if (kind, name) not in self.conflicts
        }

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` in ``kind``.

        Raises:
            PluginConflictError: two plugins registered ``name`` (the message names both).
            UnknownComponentError: no such name (the message lists close matches) or kind.
        """
        if (kind, name) in self.conflicts:
            owners = " and ".join(_origin(c.plugin, c.distribution) for c in self.conflicts[(kind, name)])
            raise PluginConflictError(
                f"{kind} name {name!r} is registered by both {owners}; uninstall or block one of "
                f"them ({BLOCK_ENV}=name)"
            )
        found = self.kind(kind).get(name)
        if found is None:
            names = sorted(self.kind(kind))
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownComponentError(
                f"no {kind} component named {name!r}{hint} (registered: {', '.join(names) or 'none'})"
            )
        return found.cls

    def resolve(self, name: str) -> type | None:
        """The class registered as ``name`` in any kind (recipes name components without kind).

        Returns ``None`` when no kind has the name.

        Raises:
            PluginConflictError: the name is a conflict in some kind, or different kinds
                register different classes under it (the message names the plugins).
        """
        found = [(kind, comps[name]) for kind, comps in sorted(self.components.items()) if name in comps]
        for kind, _ in found:
            if (kind, name) in self.conflicts:
                self.get(kind, name)  # raises, naming both plugins
        classes = {comp.cls for _, comp in found}
        if len(classes) > 1:
            owners = ", ".join(f"{kind} ({_origin(c.plugin, c.distribution)})" for kind, c in found)
            raise PluginConflictError(
                f"component name {name!r} is registered in several kinds with different classes: "
                f"{owners}; use the dotted class path instead"
            )
        return found[0][1].cls if found else None

    def find_class(self, cls: type) -> Component | None:
        """The (first) registration of a class, if any."""
        for comps in self.components.values():
            for comp in comps.values():
                if comp.cls is cls:
                    return comp
        return None


def _origin(plugin: str, distribution: str | None) -> str:
    return f"plugin {plugin!r}" + (f" (distribution {distribution!r})" if distribution else "")


def _env_list(var: str) -> list[str]:
    return [n.strip() for n in os.environ.get(var, "").split(",") if n.strip()]


def autoload_disabled() -> bool:
    """True when ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD`` is set to anything but ''/0/false/no."""
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def _dist_name(ep: Any) -> str | None:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    if name is None and dist is not None:  # older importlib.metadata: only .metadata["Name"]
        meta = getattr(dist, "metadata", None)
        name = meta.get("Name") if meta is not None else None
    return name


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _installed_entry_points(failures: list[PluginFailure]) -> list[Any]:
    """Entry points of the ``da_toolkit`` group; broken installed metadata becomes a failure."""
    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # noqa: BLE001 - a corrupt dist-info must not break the toolkit
        failures.append(
            PluginFailure("<entry points>", None, f"cannot read installed entry points: {_error_text(exc)}")
        )
        return []


class _ModulePath:
    """Entry-point-like object for a module named in ``DA_TOOLKIT_PLUGINS``."""

    def __init__(self, module: str) -> None:
        self.name = module
        self.dist = None

    def load(self) -> object:
        return importlib.import_module(self.name)


def build_plugin_manager(
    entry_points: Iterable[Any] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
) -> tuple[pluggy.PluginManager, list[PluginFailure], dict[str, str | None]]:
    """Create a plugin manager with the built-in plugin and the third-party ones.

    Args:
        entry_points: objects with ``name``, ``load()`` and optionally ``dist`` (as returned by
            :func:`importlib.metadata.entry_points`); ``None`` reads the installed ones of the
            ``da_toolkit`` group, unless autoload is disabled. Modules named in
            ``DA_TOOLKIT_PLUGINS`` are loaded in both cases.
        extra_plugins: ``(name, module_or_object)`` pairs registered directly (tests, scripts).

    Returns:
        The manager, the load failures, and the distribution of each registered plugin name.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    dists: dict[str, str | None] = {}

    def register(name: str, plugin: object, dist: str | None) -> None:
        if plugin is None:
            failures.append(PluginFailure(name, dist, "not registered: the entry point loaded None"))
            return
        try:
            pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - pluggy validation errors, duplicate objects
            failures.append(PluginFailure(name, dist, f"not registered: {_error_text(exc)}"))
            return
        dists[name] = dist
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.spec is None:  # a typo such as da_toolkit_encoder
                close = difflib.get_close_matches(caller.name, list(hookspecs.KINDS), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                failures.append(
                    PluginFailure(name, dist, f"unknown hook {caller.name!r}, ignored{hint}")
                )

    builtin = importlib.import_module("da_toolkit.builtin")
    register(BUILTIN_NAME, builtin, BUILTIN_DISTRIBUTION)

    blocked = set(_env_list(BLOCK_ENV)) - {BUILTIN_NAME}
    for name in blocked:
        pm.set_blocked(name)
    if entry_points is None:
        entry_points = [] if autoload_disabled() else _installed_entry_points(failures)
    candidates = [*entry_points, *(_ModulePath(m) for m in _env_list(EXTRA_ENV))]
    for ep in candidates:
        name = str(ep.name)
        dist = _dist_name(ep)
        if name in blocked:
            continue
        if name == BUILTIN_NAME or pm.has_plugin(name):
            if dists.get(name) != dist:  # same name from another distribution: a clash
                failures.append(
                    PluginFailure(
                        name,
                        dist,
                        f"plugin name {name!r} is already used by {_origin(name, dists.get(name))}; "
                        "this one is not loaded",
                    )
                )
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import error must not break the toolkit
            failures.append(PluginFailure(name, dist, f"failed to load: {_error_text(exc)}"))
            continue
        register(name, plugin, dist)
    for name, plugin in extra_plugins:
        if name not in blocked:
            register(name, plugin, None)
    return pm, failures, dists


def _base_classes(kind: str) -> list[type]:
    """The base classes a component of ``kind`` may derive from (imported modules only).

    A class can only derive from a base whose module is imported, so bases of packages that are
    not imported yet are skipped instead of importing them (keeps ``da-toolkit plugins`` fast).
    """
    bases = []
    for spec in hookspecs.KIND_BASES.get(kind, ()):
        module, _, attr = spec.partition(":")
        if module.split(".")[0] not in sys.modules:
            continue
        try:
            bases.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):  # pragma: no cover - optional base missing
            continue
    return bases


def _check_component(kind: str, name: object, cls: object) -> str | None:
    """Why ``name -> cls`` cannot be registered in ``kind``, or None if it can."""
    if not isinstance(name, str) or not name:
        return f"component names must be non-empty strings, got {name!r}"
    if not isinstance(cls, type):
        return f"{kind} {name!r} must be a class, got {type(cls).__name__} {cls!r}"
    specs = hookspecs.KIND_BASES.get(kind, ())
    if specs and not issubclass(cls, tuple(_base_classes(kind))):
        wanted = " or ".join(s.replace(":", ".") for s in specs)
        return f"{kind} {name!r}: class {cls.__module__}.{cls.__qualname__} must subclass {wanted}"
    return None


def collect(
    pm: pluggy.PluginManager,
    failures: Iterable[PluginFailure] = (),
    dists: Mapping[str, str | None] | None = None,
    kinds: Iterable[str] | None = None,
) -> Registry:
    """Call every hook of every plugin and build the registry.

    Each plugin's hook is called on its own, so one failing plugin cannot hide the others. The
    built-in plugin is collected first, so on a clash its class stays the listed one (but the
    name still raises :class:`PluginConflictError` when looked up).

    Args:
        kinds: collect only these kinds (``encoders``, ...); ``None`` = all. Conflicts and
            failures within a collected kind are found exactly as for a full collection.
    """
    dists = dict(dists or {})
    wanted = None if kinds is None else set(kinds)
    if wanted is not None and not wanted <= set(hookspecs.KINDS.values()):
        raise UnknownComponentError(
            f"unknown component kind(s) {sorted(wanted - set(hookspecs.KINDS.values()))}; "
            f"expected some of {sorted(hookspecs.KINDS.values())}"
        )
    registry = Registry(
        failures=list(failures),
        plugins={name: dists.get(name) for name, _ in pm.list_name_plugin() if _ is not None},
        blocked=sorted(name for name, plugin in pm.list_name_plugin() if plugin is None),
    )
    for hook_name, kind in hookspecs.KINDS.items():
        if wanted is not None and kind not in wanted:
            continue
        comps = registry.components.setdefault(kind, {})
        impls = sorted(
            getattr(pm.hook, hook_name).get_hookimpls(), key=lambda i: i.plugin_name != BUILTIN_NAME
        )
        for impl in impls:
            plugin = impl.plugin_name
            dist = dists.get(plugin)

            def fail(message: str, plugin: str = plugin, dist: str | None = dist) -> None:
                registry.failures.append(PluginFailure(plugin, dist, f"{hook_name}: {message}"))

            if impl.hookwrapper or impl.wrapper:
                fail("hook wrappers are not supported for registration hooks")
                continue
            try:
                mapping = impl.function()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                fail(_error_text(exc))
                continue
            if mapping is None:  # pluggy convention: None means "nothing to add"
                continue
            if not isinstance(mapping, Mapping):
                fail(f"must return a mapping name -> class, got {type(mapping).__name__}")
                continue
            for name, cls in mapping.items():
                problem = _check_component(kind, name, cls)
                if problem is not None:
                    fail(problem)
                    continue
                comp = Component(kind, name, cls, plugin, dist)
                first = comps.get(name)
                if first is None:
                    comps[name] = comp
                elif first.cls is not cls or first.plugin != plugin:
                    registry.conflicts.setdefault((kind, name), [first]).append(comp)
                    fail(
                        f"{kind} name {name!r} is registered by both "
                        f"{_origin(first.plugin, first.distribution)} and {_origin(plugin, dist)}"
                    )
    return registry


def build_registry(
    entry_points: Iterable[Any] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    kinds: Iterable[str] | None = None,
) -> Registry:
    """A fresh registry (see :func:`build_plugin_manager` for the arguments; ``kinds`` as in
    :func:`collect`)."""
    pm, failures, dists = build_plugin_manager(entry_points, extra_plugins)
    return collect(pm, failures, dists, kinds)


_REGISTRY: Registry | None = None
#: Registries holding one kind each, used by lookups while the full registry is not built yet.
_KIND_REGISTRIES: dict[str, Registry] = {}


def get_registry(refresh: bool = False) -> Registry:
    """The process-wide registry, built on first use (``refresh=True`` rebuilds it)."""
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _KIND_REGISTRIES.clear()
        _REGISTRY = build_registry()
    return _REGISTRY


def registry_for(kind: str) -> Registry:
    """A registry holding at least ``kind``: the process-wide one when it is built, else one that
    collects only ``kind`` (cached), so that e.g. building a model does not import every other
    kind's modules (metrics, writers: seconds of imports). Same plugins, same conflict and
    failure rules as :func:`get_registry`.
    """
    if _REGISTRY is not None:
        return _REGISTRY
    found = _KIND_REGISTRIES.get(kind)
    if found is None:
        found = _KIND_REGISTRIES[kind] = build_registry(kinds=(kind,))
    return found


def registry(kind: str) -> dict[str, type]:
    """Mapping name -> class of one kind from the process-wide registry (conflicts left out)."""
    return registry_for(kind).usable(kind)


def get_component(kind: str, name: str) -> type:
    """The class registered as ``name`` in ``kind`` (errors name both plugins of a clash, or list
    close matches of an unknown name)."""
    return registry_for(kind).get(kind, name)


def reset() -> None:
    """Forget the process-wide registry (tests)."""
    global _REGISTRY
    _REGISTRY = None
    _KIND_REGISTRIES.clear()
