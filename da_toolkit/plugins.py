"""Plugin manager: built-in plugin, entry-point autoload, and the component registry.

Components are registered through the hooks in :mod:`da_toolkit.hookspecs`; the kinds (hook,
name, base class) are the one table :data:`da_toolkit.builtin.KINDS`. The built-in plugin
(:mod:`da_toolkit.builtin`) is registered first, exactly like any other plugin; then every entry
point of the group ``da_toolkit`` is loaded, unless ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1``.

One cache, one lookup: :func:`get_registry` returns the process-wide :class:`Registry` (built
on first use; each kind's hooks run the first time that kind is needed), and
:func:`get_component` looks one name up in it. ``get_registry().usable(kind)`` is the mapping
name -> class of one kind.

Environment variables (read each time a plugin manager is built):

* ``DA_TOOLKIT_DISABLE_PLUGIN_AUTOLOAD=1``: do not load third-party entry points.
* ``DA_TOOLKIT_BLOCK_PLUGINS=name1,name2``: never load these plugins (entry-point names, or the
  module paths given in ``DA_TOOLKIT_PLUGINS``). ``builtin`` cannot be blocked.
* ``DA_TOOLKIT_PLUGINS=pkg.module,other.module``: import these modules as plugins, even when
  autoload is disabled (like ``PYTEST_PLUGINS``).

A hook maps names to classes, or to class references ``"package.module:ClassName"`` (like an
entry point): a referenced class is imported when it is first used (``Component.cls``), so
listing or looking up names imports nothing (``da-toolkit plugins`` does not import torch,
Lightning or torchmetrics; the built-in plugin registers references). A reference that cannot be
imported, or whose class is not of the right base, raises :class:`PluginError` naming the plugin
when used (``da-toolkit plugins --strict`` imports them all and lists such failures).

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
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
BUILTIN_MODULE = "da_toolkit.builtin"


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
    """One registered component: ``target`` registered as ``name`` in ``kind`` by ``plugin``.

    ``target`` is the class, or a reference ``"package.module:ClassName"`` imported by :attr:`cls`.
    """

    kind: str
    name: str
    target: type | str
    plugin: str
    distribution: str | None

    @property
    def class_path(self) -> str:
        """Import path of the class (``module.QualName``), as used by recipes' ``class_path``;
        a reference is not imported for this."""
        if isinstance(self.target, str):
            return self.target.replace(":", ".")
        return f"{self.target.__module__}.{self.target.__qualname__}"

    @property
    def cls(self) -> type:
        """The class (a reference is imported and checked against the kind's base on first use).

        Raises:
            PluginError: the reference cannot be imported or is not a class of the right base.
        """
        if isinstance(self.target, type):
            return self.target
        return _import_reference(self.kind, self.name, self.target, self.plugin)


_REFERENCE_FORM = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _import_reference(kind: str, name: str, ref: str, plugin: str) -> type:
    """The class a ``"module:QualName"`` reference names, checked against ``kind``'s base (cached)."""
    key = (kind, ref)
    found = _IMPORTED.get(key)
    if found is not None:
        return found
    module, _, qualname = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - any import error of a plugin's module
        raise PluginError(f"{kind} {name!r} of plugin {plugin!r}: cannot import {ref} ({_error_text(exc)})") from None
    base = next(k.base for k in kinds_table() if k.name == kind)
    problem = _check_component(kind, base, name, obj)
    if problem is not None:
        raise PluginError(f"plugin {plugin!r}: {problem}")
    _IMPORTED[key] = obj
    return obj


#: imported references: ``(kind, "module:QualName") -> class``
_IMPORTED: dict[tuple[str, str], type] = {}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or part of one) that could not be used: import error, hook error, conflict..."""

    plugin: str
    distribution: str | None
    error: str
    #: the kind whose hook failed (``None``: the plugin itself could not be loaded)
    kind: str | None = None
    #: the refused name, when one registration of the hook was refused (``None``: the whole hook)
    component: str | None = None


class Registry:
    """Components by kind and name, with the failures met while collecting them.

    A registry holds a plugin manager and collects each kind the first time it is asked for
    (:meth:`collect`, :meth:`kind`, :meth:`get`...): looking up an encoder calls the encoder
    hooks only. ``components[kind][name]`` holds the first registration of a name; a name
    registered again by another plugin is listed in ``conflicts[(kind, name)]`` (all
    registrations, first included). ``components``, ``conflicts`` and ``failures`` cover the
    kinds collected so far (every kind after ``collect()``).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        failures: Iterable[PluginFailure] = (),
        dists: Mapping[str, str | None] | None = None,
    ) -> None:
        self._pm = pm
        self._dists = dict(dists or {})
        self.components: dict[str, dict[str, Component]] = {}
        self.failures: list[PluginFailure] = list(failures)
        self.conflicts: dict[tuple[str, str], list[Component]] = {}
        self.plugins: dict[str, str | None] = {
            name: self._dists.get(name) for name, plugin in pm.list_name_plugin() if plugin is not None
        }
        self.blocked: list[str] = sorted(name for name, plugin in pm.list_name_plugin() if plugin is None)

    @property
    def collected(self) -> frozenset[str]:
        """The kinds collected so far."""
        return frozenset(self.components)

    def collect(self, kinds: Iterable[str] | None = None) -> Registry:
        """Call the hooks of ``kinds`` (``None``: every kind) not collected yet; returns ``self``.

        Each plugin's hook is called on its own, so one failing plugin cannot hide the others.
        The built-in plugin is collected first, so on a clash its class stays the listed one
        (but the name still raises :class:`PluginConflictError` when looked up).

        Raises:
            UnknownComponentError: a name in ``kinds`` is not a kind.
        """
        table = {k.name: k for k in kinds_table()}
        wanted = list(table) if kinds is None else list(kinds)
        unknown = sorted(set(wanted) - set(table))
        if unknown:
            raise UnknownComponentError(
                f"unknown component kind {unknown[0]!r}; expected one of {sorted(table)}"
            )
        for name in wanted:
            if name not in self.components:
                self._collect_kind(table[name])
        return self

    def _collect_kind(self, kind: Any) -> None:
        comps = self.components.setdefault(kind.name, {})
        impls = sorted(
            getattr(self._pm.hook, kind.hook).get_hookimpls(), key=lambda i: i.plugin_name != BUILTIN_NAME
        )
        base: type | None = None
        for impl in impls:
            plugin = impl.plugin_name
            dist = self._dists.get(plugin)

            def fail(
                message: str, component: object = None, plugin: str = plugin, dist: str | None = dist
            ) -> None:
                name = None if component is None else str(component)
                self.failures.append(PluginFailure(plugin, dist, f"{kind.hook}: {message}", kind.name, name))

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
                if isinstance(cls, str):  # a reference: checked when first used (nothing imported now)
                    problem = _check_reference(kind.name, name, cls)
                else:
                    if base is None:  # after the first hook ran: the base's module is imported by now
                        base = kind.base
                    problem = _check_component(kind.name, base, name, cls)
                if problem is not None:
                    fail(problem, name)
                    continue
                comp = Component(kind.name, name, cls, plugin, dist)
                first = comps.get(name)
                if first is None:
                    comps[name] = comp
                elif first.class_path != comp.class_path or first.plugin != plugin:
                    self.conflicts.setdefault((kind.name, name), [first]).append(comp)
                    fail(
                        f"{kind.name} name {name!r} is registered by both "
                        f"{_origin(first.plugin, first.distribution)} and {_origin(plugin, dist)}",
                        name,
                    )

    def kind(self, kind: str) -> dict[str, Component]:
        """All components of one kind (``encoders``, ``losses``, ...), by name, conflicts included."""
        self.collect([kind])
        return self.components[kind]

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
            UnknownComponentError: no such name or kind. The message lists close matches among
                the names of this kind, and the plugins that failed to load (the name may be one
                of theirs).
        """
        comps = self.kind(kind)
        if (kind, name) in self.conflicts:
            owners = " and ".join(_origin(c.plugin, c.distribution) for c in self.conflicts[(kind, name)])
            raise PluginConflictError(
                f"{kind} name {name!r} is registered by both {owners}; uninstall or block one of "
                f"them ({BLOCK_ENV}=name)"
            )
        found = comps.get(name)
        if found is None:
            raise UnknownComponentError(f"no {kind} component named {name!r}{self.missing_hint(kind, name)}")
        return found.cls

    def missing_hint(self, kind: str, name: str, class_names: bool = False) -> str:
        """Why ``name`` is not in ``kind``, as the end of an error message.

        Close matches among the names of this kind (and the bare names of its classes with
        ``class_names``, where those are accepted, as in recipes), the refused registrations
        of ``name``, the plugins that failed to load and the hooks of this kind that failed
        (``name`` may be one of theirs), then the registered names.
        """
        comps = self.kind(kind)
        names = sorted(comps)
        bare = {c.class_path.rsplit(".", 1)[-1] for c in comps.values()}
        candidates = names + (sorted(bare - set(names)) if class_names else [])
        close = difflib.get_close_matches(name, candidates, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        broken = [
            f
            for f in self.failures
            if (f.kind is None and f.plugin not in self.plugins)  # never loaded
            or (f.kind == kind and f.component in (None, name))  # the hook failed, or refused the name
        ]
        if broken:
            causes = "; ".join(f"{_origin(f.plugin, f.distribution)} failed ({f.error})" for f in broken)
            hint += f"; {causes} - fix or uninstall it (see `da-toolkit plugins`)"
        return f"{hint} (registered: {', '.join(names) or 'none'})"

    def resolve(self, name: str) -> type | None:
        """The class registered as ``name`` in any kind (recipes name components without kind).

        Collects every kind. Returns ``None`` when no kind has the name.

        Raises:
            PluginConflictError: the name is a conflict in some kind, or different kinds
                register different classes under it (the message names the plugins).
        """
        comp = self.resolve_component(name)
        return comp.cls if comp is not None else None

    def resolve_component(self, name: str) -> Component | None:
        """:meth:`resolve` without importing the class: its registration (``class_path`` is known)."""
        self.collect()
        found = [(kind, comps[name]) for kind, comps in sorted(self.components.items()) if name in comps]
        for kind, _ in found:
            if (kind, name) in self.conflicts:
                self.get(kind, name)  # raises, naming both plugins
        classes = {comp.class_path for _, comp in found}
        if len(classes) > 1:
            owners = ", ".join(f"{kind} ({_origin(c.plugin, c.distribution)})" for kind, c in found)
            raise PluginConflictError(
                f"component name {name!r} is registered in several kinds with different classes: "
                f"{owners}; use the dotted class path instead"
            )
        return found[0][1] if found else None

    def import_all(self) -> list[PluginFailure]:
        """Import every referenced class of the collected kinds; the references that fail are
        recorded in :attr:`failures` (and returned), and their names dropped."""
        new: list[PluginFailure] = []
        for kind, comps in self.components.items():
            for name, comp in list(comps.items()):
                try:
                    _ = comp.cls
                except PluginError as exc:
                    new.append(PluginFailure(comp.plugin, comp.distribution, str(exc), kind, name))
                    del comps[name]
        self.failures.extend(new)
        return new

    def find_class(self, cls: type) -> Component | None:
        """The (first) registration of a class in any kind, if any (collects every kind)."""
        self.collect()
        path = f"{cls.__module__}.{cls.__qualname__}"
        for comps in self.components.values():
            for comp in comps.values():
                if comp.class_path == path and comp.cls is cls:
                    return comp
        return None


def _builtin_plugin() -> Any:
    """The built-in plugin module, loaded by name like the entry points of other plugins.

    It names every component package, so it sits at the top of the package; this module sits
    below the component packages (models look encoders up here) and must not import it.
    """
    return importlib.import_module(BUILTIN_MODULE)


def kinds_table() -> tuple[Any, ...]:
    """The table of component kinds (:data:`da_toolkit.builtin.KINDS`): ``hook``, ``name``,
    ``base`` of each."""
    return tuple(_builtin_plugin().KINDS)


def kind_names() -> list[str]:
    """The short names of the component kinds (``encoders``, ``decoders``, ...), sorted."""
    return sorted(k.name for k in kinds_table())


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
                close = difflib.get_close_matches(caller.name, [k.hook for k in kinds_table()], n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                failures.append(
                    PluginFailure(name, dist, f"unknown hook {caller.name!r}, ignored{hint}")
                )

    register(BUILTIN_NAME, _builtin_plugin(), BUILTIN_DISTRIBUTION)

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


def _check_component(kind: str, base: type, name: object, cls: object) -> str | None:
    """Why ``name -> cls`` cannot be registered in ``kind``, or None if it can."""
    if not isinstance(name, str) or not name:
        return f"component names must be non-empty strings, got {name!r}"
    if not isinstance(cls, type):
        return f"{kind} {name!r} must be a class, got {type(cls).__name__} {cls!r}"
    if not issubclass(cls, base):
        return f"{kind} {name!r}: class {cls.__module__}.{cls.__qualname__} must subclass {public_path(base)}"
    return None


def _check_reference(kind: str, name: object, ref: str) -> str | None:
    """Why ``name -> "module:QualName"`` cannot be registered in ``kind`` (its form only), or None."""
    if not isinstance(name, str) or not name:
        return f"component names must be non-empty strings, got {name!r}"
    if not _REFERENCE_FORM.fullmatch(ref):
        return f"{kind} {name!r}: a class reference must read 'package.module:ClassName', got {ref!r}"
    return None


def public_path(cls: type) -> str:
    """The shortest dotted path a class is importable from (``torch.nn.Module``, not
    ``torch.nn.modules.module.Module``), among the packages of its module that are imported."""
    parts = cls.__module__.split(".")
    for i in range(1, len(parts)):
        module = sys.modules.get(".".join(parts[:i]))
        if module is not None and getattr(module, cls.__qualname__, None) is cls:
            return f"{module.__name__}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def build_registry(
    entry_points: Iterable[Any] | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    kinds: Iterable[str] | None = None,
) -> Registry:
    """A fresh registry with ``kinds`` collected (``None``: every kind; ``()``: none yet, each
    kind is then collected when first used). See :func:`build_plugin_manager` for the other
    arguments."""
    pm, failures, dists = build_plugin_manager(entry_points, extra_plugins)
    return Registry(pm, failures, dists).collect(kinds)


#: The process-wide registry (the one cache): built on first use, each kind collected when needed.
_REGISTRY: Registry | None = None


def get_registry(refresh: bool = False, kinds: Iterable[str] | None = None) -> Registry:
    """The process-wide registry, with ``kinds`` collected (``None``: every kind).

    Built on first use; ``refresh=True`` rebuilds it (after installing or blocking plugins).
    """
    global _REGISTRY
    if _REGISTRY is None or refresh:
        _REGISTRY = build_registry(kinds=())
    return _REGISTRY.collect(kinds)


def get_component(kind: str, name: str) -> type:
    """The class registered as ``name`` in ``kind``, from the process-wide registry.

    Only ``kind`` is collected (building a model does not import the metrics or the writers).

    Raises:
        PluginConflictError: two plugins register ``name`` (the message names both).
        UnknownComponentError: no such kind or name (close matches, or the plugins that failed
            to load, are named).
    """
    return get_registry(kinds=()).get(kind, name)


def reset() -> None:
    """Forget the process-wide registry (tests)."""
    global _REGISTRY
    _REGISTRY = None
