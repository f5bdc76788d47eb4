"""Resolving short ``class_path`` names in recipes before jsonargparse sees them.

jsonargparse resolves fully qualified class paths, and bare class names of already imported
subclasses of the expected type. On top of that, recipes may name any component by its
**registered plugin name** (``class_path: affine_invariant``): this module rewrites such names to
the dotted path of the registered class. A ``class_path`` that is neither registered, nor the
name of a known class, nor importable is reported with close matches before any work starts.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
import warnings
from collections.abc import Iterator
from typing import Any


class UnknownClassPathError(ValueError):
    """A recipe names a class that no plugin registers and that cannot be imported."""


def join_key(where: str, key: str) -> str:
    """``where.key`` - or ``where key`` when ``where`` names a file (``"teacher.yaml:"``), so that
    messages read ``teacher.yaml: model.init_args.labeled_loss.class_path: ...``."""
    return f"{where} {key}" if where.endswith(":") else f"{where}.{key}"


def _all_subclasses(cls: type) -> Iterator[type]:
    seen: set[type] = set()
    stack = [cls]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                yield sub


#: modules imported before parsing so that bare class names of their classes resolve
RESOLVABLE_MODULES = (
    "da_toolkit.tasks",
    "da_toolkit.data.student_datamodule",
    "da_toolkit.tasks.pseudo_label",
    "da_toolkit.data.datamodule",
    "da_toolkit.inference.task",
    "da_toolkit.inference.data",
    "lightning.pytorch.callbacks",
    "lightning.pytorch.loggers",
)


@functools.lru_cache(maxsize=1)
def import_resolvable_classes() -> None:
    """Import the toolkit's tasks, data modules and Lightning's callbacks/loggers (best effort)."""
    for name in RESOLVABLE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a missing optional part must not break the others
            warnings.warn(f"da-toolkit: could not import {name}: {exc}", RuntimeWarning, stacklevel=2)


def known_class_names() -> dict[str, type]:
    """Bare names of the imported classes jsonargparse may resolve (modules, tasks, data, ...)."""
    import_resolvable_classes()
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger
    from torch import nn
    from torch.utils.data import Dataset

    names: dict[str, type] = {}
    # Logger: bare Lightning logger names (CSVLogger, TensorBoardLogger) resolve like callbacks
    for base in (nn.Module, pl.LightningModule, pl.LightningDataModule, pl.Callback, Logger, Dataset):
        names.setdefault(base.__name__, base)
        for sub in _all_subclasses(base):
            names.setdefault(sub.__name__, sub)
    return names


def registered_names() -> dict[str, str]:
    """Registered component name -> dotted class path over every kind of the plugin registry
    (nothing is imported)."""
    from da_toolkit.plugins import get_registry

    registry = get_registry()
    out: dict[str, str] = {}
    for comps in registry.components.values():
        for name, comp in comps.items():
            out.setdefault(name, comp.class_path)
    return out


def _importable(path: str) -> bool:
    module, _, attr = path.rpartition(".")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return hasattr(mod, attr)


def _close(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    return f"; did you mean {', '.join(close)}?" if close else ""


#: recipe keys -> the component kind a ``class_path`` under them names (for suggestions only)
_KIND_OF_KEY = (
    ("encoder", "encoders"), ("decoder", "decoders"), ("loss", "losses"), ("perturb", "perturbations"),
    ("metric", "metrics"), ("writer", "writers"), ("source", "datasources"),
)
_SOURCE_KEYS = frozenset({"labeled", "unlabeled", "val", "test", "predict"})
_SINGULAR = {"losses": "loss", "datasources": "data source"}


def expected_kind(where: str) -> str | None:
    """The component kind a ``class_path`` at ``where`` names, from the key that holds it.

    ``model.init_args.labeled_loss.class_path`` -> ``losses``, ``data.init_args.val[0].class_path``
    -> ``datasources``, ``trainer.logger.class_path`` -> ``loggers``, ``...callbacks[1]...`` ->
    ``callbacks``; ``None`` when the key says nothing.
    """
    keys = [k for k in re.sub(r"\[\d+\]", "", where).split(".") if k not in ("", "class_path", "init_args")]
    for key in (k.lower() for k in reversed(keys[-2:])):  # the holder, or its parent (``steps`` of a sequence)
        if key in ("logger", "loggers"):
            return "loggers"
        if key == "callbacks":
            return "callbacks"
        if key in _SOURCE_KEYS:
            return "datasources"
        kind = next((kind for fragment, kind in _KIND_OF_KEY if fragment in key), None)
        if kind is not None:
            return kind
    return None


def _lightning_names(kind: str) -> list[str]:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import Logger

    base = Logger if kind == "loggers" else pl.Callback
    return sorted({c.__name__ for c in _all_subclasses(base) if not c.__name__.startswith("_")})


def unknown_name_hint(value: str, where: str) -> str:
    """The end of the error for a bare ``class_path`` nobody registers or imports.

    Close matches come from the names of the kind the key names (registered names and their
    classes' names; Lightning's loggers or callbacks), else from the registered names and the
    toolkit's and Lightning's own classes - never from every imported torch class. Plugins that
    failed to load (they may have registered the name) are named with the cause.
    """
    from da_toolkit.plugins import get_registry, kind_names

    registry = get_registry()
    kind = expected_kind(where)
    if kind in kind_names():
        what = _SINGULAR.get(kind, kind[:-1])
        return f": not a registered {what} name nor an imported class{registry.missing_hint(kind, value, class_names=True)}"
    if kind is not None:  # loggers, callbacks
        return f": not a Lightning {kind[:-1]}{_close(value, _lightning_names(kind))}"
    own = sorted(
        name for name, cls in known_class_names().items() if cls.__module__.split(".")[0] in ("da_toolkit", "lightning")
    )
    hint = _close(value, sorted(registered_names()) + own)
    failed = [f for f in registry.failures if f.kind is None and f.plugin not in registry.plugins]
    if failed:
        hint += "; " + "; ".join(f"plugin {f.plugin!r} failed to load ({f.error})" for f in failed)
    return f": not a registered component name nor an imported class{hint}"


#: the only classes jsonargparse can see in a run (the toolkit's, torch's, Lightning's, webdataset's)
#: whose names start with a lower-case letter; a test keeps this true
LOWERCASE_CLASS_NAMES = frozenset({"repeatedly", "with_epoch", "with_length"})


def misspelled_registered_name(value: str, where: str) -> UnknownClassPathError | None:
    """The error for a ``class_path`` that can only be a misspelled registered name, found
    without importing any component, or ``None``.

    That is a bare name starting with a lower-case letter (``affine_invariantt``), under a key of a
    component kind (``labeled_loss``, ``encoder``, ``labeled``...), that no plugin registers: the
    classes jsonargparse resolves by bare name start with a capital letter (but
    :data:`LOWERCASE_CLASS_NAMES`), so the full check would refuse it too - after importing
    Lightning (5-30 s). The message is the full check's.
    """
    from da_toolkit.plugins import PluginConflictError, get_registry, kind_names

    if "." in value or not value[:1].islower() or value in LOWERCASE_CLASS_NAMES:
        return None
    if expected_kind(where) not in kind_names():
        return None
    try:
        if get_registry().resolve_component(value) is not None:
            return None
    except PluginConflictError:
        return None  # the full check names both plugins
    return UnknownClassPathError(
        f"{where}: unknown class_path {value!r}{unknown_name_hint(value, where)} (see `da-toolkit plugins`)"
    )


def precheck_config(obj: Any, where: str = "config") -> None:
    """Raise :func:`misspelled_registered_name`'s error for the first such ``class_path`` of a loaded config."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = join_key(where, key)
            if key == "class_path" and isinstance(value, str):
                error = misspelled_registered_name(value, path)
                if error is not None:
                    raise error
            else:
                precheck_config(value, path)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            precheck_config(value, f"{where}[{i}]")


def resolve_class_path(value: str, where: str) -> str:
    """The dotted class path for a ``class_path`` value (registered name, bare name or dotted)."""
    from da_toolkit.plugins import PluginConflictError, get_registry

    try:
        comp = get_registry().resolve_component(value)
    except PluginConflictError as exc:  # two plugins claim the name: say which, never pick one
        raise UnknownClassPathError(f"{where}: {exc}") from None
    if comp is not None:
        return comp.class_path  # not imported here: jsonargparse imports it when it parses
    registered = registered_names()
    if "." in value:
        if _importable(value):
            return value
        module, _, attr = value.rpartition(".")
        try:
            mod = importlib.import_module(module)
            hint = _close(attr, [n for n in dir(mod) if not n.startswith("_")])
            raise UnknownClassPathError(f"{where}: module {module!r} has no class {attr!r}{hint}")
        except ImportError as exc:
            dotted = list(registered.values())
            raise UnknownClassPathError(
                f"{where}: cannot import {value!r} ({exc}){_close(value, dotted + list(registered))}"
            ) from None
    known = known_class_names()
    if value in known:
        return value
    raise UnknownClassPathError(
        f"{where}: unknown class_path {value!r}{unknown_name_hint(value, where)} (see `da-toolkit plugins`)"
    )


def resolve_config(obj: Any, where: str = "config") -> Any:
    """A copy of a loaded recipe with every ``class_path`` value resolved (recursively)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            path = join_key(where, key)
            if key == "class_path" and isinstance(value, str):
                out[key] = resolve_class_path(value, path)
            else:
                out[key] = resolve_config(value, path)
        return out
    if isinstance(obj, list):
        return [resolve_config(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj
