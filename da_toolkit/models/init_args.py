"""Automatic capture of constructor arguments, so that models can be described as data.

Subclasses of :class:`RecordsInitArgs` (every :class:`~da_toolkit.models.encoders.base.Encoder`,
:class:`~da_toolkit.models.decoders.base.Decoder` and
:class:`~da_toolkit.models.depth_model.DepthModel`) get ``module.init_args``: the arguments their
constructor was called with, defaults filled in, as JSON-friendly values (tuples become lists,
paths strings). A plugin class only defines ``__init__`` with typed arguments; nothing to call.

Arguments listed in a class's ``transient_init_args`` are recorded as their default value: they
name inputs that a saved model does not need again (e.g. a backbone checkpoint whose tensors are
in the saved state dict).
"""

from __future__ import annotations

import enum
import functools
import inspect
import os
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = ["RecordsInitArgs", "json_friendly"]


def json_friendly(value: Any) -> Any:
    """``value`` with tuples/sets as lists, paths as strings, enums as their value, mappings as
    dicts, components that record init_args as ``{class_path, init_args}`` (recursively); other
    values are returned unchanged."""
    if isinstance(value, RecordsInitArgs):
        cls = type(value)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(getattr(value, "init_args", {}))}
    if isinstance(value, enum.Enum):
        return json_friendly(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): json_friendly(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_friendly(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [json_friendly(v) for v in sorted(value)]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalars
        return value.item()
    return value


def _wrap_init(cls: type, init: Any) -> Any:
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        # the outermost constructor (that of the most derived class defining __init__) records
        owner = next(c for c in type(self).__mro__ if "__init__" in c.__dict__)
        if owner is not cls:
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        recorded: dict[str, Any] = {}
        transient = getattr(type(self), "transient_init_args", frozenset())
        for name, param in list(signature.parameters.items())[1:]:
            value = bound.arguments.get(name, param.default)
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                recorded.update(json_friendly(dict(value)))
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(
                        f"{type(self).__qualname__}: positional *{name} arguments cannot be recorded "
                        f"as init_args; give them names"
                    )
                continue
            if name in transient:
                value = None if param.default is inspect.Parameter.empty else param.default
            recorded[name] = json_friendly(value)
        object.__setattr__(self, "init_args", recorded)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    return __init__


class RecordsInitArgs:
    """Mixin: ``self.init_args`` = the constructor arguments of the concrete class (see module)."""

    #: Arguments recorded as their default (inputs that a saved model carries in its tensors).
    transient_init_args: ClassVar[frozenset[str]] = frozenset()
    init_args: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_records_init_args", False):
            wrapped = _wrap_init(cls, init)
            wrapped._records_init_args = True  # type: ignore[attr-defined]
            cls.__init__ = wrapped  # type: ignore[misc]
