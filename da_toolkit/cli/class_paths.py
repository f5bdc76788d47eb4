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
import warnings
from collections.abc import Iterator
from typing import Any


class UnknownClassPathError(ValueError):
    """A recipe names a class that no plugin registers and that cannot be imported."""


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
    from torch import nn
    from torch.utils.data import Dataset

    names: dict[str, type] = {}
    for base in (nn.Module, pl.LightningModule, pl.LightningDataModule, pl.Callback, Dataset):
        names.setdefault(base.__name__, base)
        for sub in _all_subclasses(base):
            names.setdefault(sub.__name__, sub)
    return names


def registered_names() -> dict[str, type]:
    """Registered component name -> class over every kind of the plugin registry."""
    from da_toolkit.plugins import get_registry

    out: dict[str, type] = {}
    for comps in get_registry().components.values():
        for name, comp in comps.items():
            out.setdefault(name, comp.cls)
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


def resolve_class_path(value: str, where: str) -> str:
    """The dotted class path for a ``class_path`` value (registered name, bare name or dotted)."""
    from da_toolkit.plugins import PluginConflictError, get_registry

    try:
        cls = get_registry().resolve(value)
    except PluginConflictError as exc:  # two plugins claim the name: say which, never pick one
        raise UnknownClassPathError(f"{where}: {exc}") from None
    if cls is not None:
        return f"{cls.__module__}.{cls.__qualname__}"
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
            dotted = [f"{c.__module__}.{c.__qualname__}" for c in registered.values()]
            raise UnknownClassPathError(
                f"{where}: cannot import {value!r} ({exc}){_close(value, dotted + list(registered))}"
            ) from None
    known = known_class_names()
    if value in known:
        return value
    raise UnknownClassPathError(
        f"{where}: unknown class_path {value!r}: not a registered component name nor an imported "
        f"class{_close(value, sorted(registered) + sorted(known))} (see `da-toolkit plugins`)"
    )


def resolve_config(obj: Any, where: str = "config") -> Any:
    """A copy of a loaded recipe with every ``class_path`` value resolved (recursively)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            path = f"{where}.{key}"
            if key == "class_path" and isinstance(value, str):
                out[key] = resolve_class_path(value, path)
            else:
                out[key] = resolve_config(value, path)
        return out
    if isinstance(obj, list):
        return [resolve_config(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj
