"""``da-toolkit fit|validate|test|predict``: LightningCLI over any LightningModule/DataModule.

Model and data are given in subclass mode (``model.class_path`` / ``data.class_path``), so the
training tasks (:mod:`da_toolkit.tasks`), the inference task and any plugin's classes all work.
Before parsing, plugins are loaded (so bare class names of plugin classes resolve) and every
``class_path`` of the ``--config`` files and of ``--...class_path`` arguments is resolved: a
registered component name (``class_path: affine_invariant``) becomes its class's dotted path; an
unknown name is an error listing close matches, raised before any work starts.

Trainer conveniences: a ``ModelCheckpoint`` without ``dirpath`` writes to
``<default_root_dir>/checkpoints``, and every ``ModelCheckpoint`` keeps ``last.ckpt``
(``save_last=True``), so re-running the same command with ``--ckpt_path last`` resumes.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from argparse import ArgumentError
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from da_toolkit.cli.checks import RecipeError, parse_error_line
from da_toolkit.cli.class_paths import (
    UnknownClassPathError,
    import_resolvable_classes,
    resolve_class_path,
    resolve_config,
)
from da_toolkit.cli.config_files import load_config_file
from da_toolkit.cli.recipe_errors import ConfigValueError, contract_error, register_origin, weights_file_error

if TYPE_CHECKING:  # pragma: no cover
    from da_toolkit.cli.depth_cli import DepthLightningCLI

#: names that live in :mod:`da_toolkit.cli.depth_cli` (it imports Lightning), importable from here too
_DEPTH_CLI_NAMES = frozenset({"DepthLightningCLI", "SafeSaveConfigCallback", "SAVED_CONFIG_HEADER", "ParsedConfig",
                              "HeldLog", "SEED_LOGGER", "configure_checkpointing"})


def __getattr__(name: str) -> Any:
    """``lightning_cli.DepthLightningCLI`` etc.: imported from :mod:`~da_toolkit.cli.depth_cli` when
    asked for, so that importing this module (every ``da-toolkit`` command) does not import Lightning."""
    if name in _DEPTH_CLI_NAMES:
        from da_toolkit.cli import depth_cli

        return getattr(depth_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

CONFIG_FLAGS = ("--config", "-c")


def _group_classes(data: dict[str, Any], known: dict[str, type]) -> None:
    """Remember the class of each top-level group a config names (for later configs without it)."""
    from da_toolkit.cli.model_forms import _import_class

    for group, value in data.items():
        if isinstance(value, dict) and isinstance(value.get("class_path"), str):
            cls = _import_class(value["class_path"])
            if cls is not None:
                known[group] = cls


def expand_config(data: dict[str, Any], where: str, group_classes: dict[str, type] | None = None,
                  deferred: dict[str, Any] | None = None) -> dict[str, Any]:
    """A loaded config with registered names resolved and model short forms expanded.

    ``group_classes`` maps top-level groups to their class when the config itself does not name it
    (an override file of a recipe, the pseudo-label job's ``model``); it is updated with the
    classes this config names. ``deferred``: see :func:`~da_toolkit.cli.model_forms.expand_models`.
    """
    from da_toolkit.cli.model_forms import expand_models

    known = group_classes if group_classes is not None else {}
    resolved = resolve_config(data, where=where)
    _group_classes(resolved, known)
    return resolve_config(expand_models(resolved, where, known, deferred), where=where)


def _resolve_config_file(path: str, tmpdir: str, index: int, group_classes: dict[str, type],
                         deferred: dict[str, Any]) -> str:
    file = Path(path)
    data = load_config_file(path)
    if data is None:
        return path
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping at the top level, got {type(data).__name__}")
    resolved = expand_config(data, f"{path}:", group_classes, deferred)
    if resolved == data:
        return path
    out = Path(tmpdir) / f"{index:02d}_{file.name}"
    out.write_text(yaml.safe_dump(resolved, sort_keys=False))
    register_origin(str(out), path)  # errors name the user's file, not this one
    return str(out)


def preprocess_args(argv: Sequence[str], tmpdir: str, group_classes: dict[str, type] | None = None) -> list[str]:
    """Resolve registered names and expand model short forms in ``--config`` files and arguments.

    ``--*.class_path`` values are resolved (:mod:`da_toolkit.cli.class_paths`); values of
    model-typed parameters (``--model.init_args.model=tiny``, ``--model.init_args.teacher=FILE``)
    are expanded (:mod:`da_toolkit.cli.model_forms`). ``group_classes``: see :func:`expand_config`.
    """
    from da_toolkit.cli.model_forms import expand_argument, model_parameter_names

    keep_nested_values()
    known = dict(group_classes or {})
    deferred: dict[str, Any] = {}  # missing weights files that a later config/argument may replace
    model_names = model_parameter_names()
    args = list(argv)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        parts = key.lstrip("-").split(".")
        special = key.startswith("--") or key == "-c"
        special = special and (key in CONFIG_FLAGS or key.endswith("class_path") or key.endswith(".help")
                               or (len(parts) >= 2 and parts[-1] in model_names))
        if not special or (not eq and i + 1 >= len(args)):
            out.append(arg)
            i += 1
            continue
        if not eq:
            value = args[i + 1]
            i += 1
        if key in CONFIG_FLAGS:
            value = _resolve_config_file(value, tmpdir, len(out), known, deferred)
        elif key.endswith("class_path"):
            value = resolve_class_path(value, key.lstrip("-"))
        elif key.endswith(".help"):  # --model.init_args.model.init_args.encoder.help dinov2 (issue 14.5)
            value = help_class_path(value, key.lstrip("-")[: -len("help")] + "class_path")
        else:
            deferred.pop(key.lstrip("-"), None)
            value = expand_argument(key, value) or value
        out.append(f"{key}={value}")
        i += 1
    if deferred:
        raise next(iter(deferred.values()))
    return out


def precheck_args(argv: Sequence[str]) -> None:
    """The checks of ``argv`` that need no component imported (before Lightning is): every
    ``--config`` file exists, is YAML and a mapping, and names no misspelled registered name
    (:func:`~da_toolkit.cli.class_paths.precheck_config`); so do ``--...class_path`` arguments."""
    from da_toolkit.cli.class_paths import misspelled_registered_name, precheck_config

    args = list(argv)
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if not eq:
            if i + 1 >= len(args):
                continue
            value = args[i + 1]
        if key in CONFIG_FLAGS:
            data = load_config_file(value)
            if data is not None and not isinstance(data, dict):
                raise ValueError(f"--config {value}: expected a mapping at the top level, got {type(data).__name__}")
            precheck_config(data, f"{value}:")
        elif key.startswith("--") and key.endswith("class_path"):
            error = misspelled_registered_name(value, key[2:])
            if error is not None:
                raise error


def help_class_path(value: str, where: str) -> str:
    """The dotted class path jsonargparse's ``--KEY.help CLASS`` needs, for a registered name, a
    bare class name or a dotted path (unknown names: the ``class_path`` error)."""
    from da_toolkit.cli.class_paths import known_class_names

    path = resolve_class_path(value, where)
    cls = known_class_names().get(path) if "." not in path else None
    return f"{cls.__module__}.{cls.__qualname__}" if cls is not None else path


def keep_nested_values() -> None:
    """Make ``--a.init_args.b.init_args.c=null`` set ``None`` (jsonargparse 4.53 gave ``"None"``).

    An argument two or more class levels deep reaches the inner class's parser through jsonargparse's
    ``adapt_class_type`` as ``f"--{key}={value}"``, with ``value`` already loaded as YAML by the
    outer level: ``null`` became the text ``None`` (a ``str | None`` parameter such as an encoder's
    ``weights`` got the string ``"None"``; a ``float | None`` one was refused). Here a loaded
    non-string value is written back as JSON (valid YAML: ``null``, ``true``, ``[1, 2]``) before it
    is formatted; strings are passed on unchanged, as before. Installed once, idempotent.
    """
    import json

    from jsonargparse import Namespace, _typehints
    from jsonargparse._util import NestedArg

    original = _typehints.adapt_class_type
    if getattr(original, "_da_toolkit", False):
        return

    def as_text(arg: Any) -> Any:
        if isinstance(arg, NestedArg) and not isinstance(arg.val, str):
            try:
                return NestedArg(key=arg.key, val=json.dumps(arg.val))
            except (TypeError, ValueError):
                pass  # not JSON-able: leave it to jsonargparse
        return arg

    def adapt_class_type(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, NestedArg):
            value = as_text(value)
        elif isinstance(value, (Namespace, dict)) and isinstance(value.get("init_args"), NestedArg):
            value["init_args"] = as_text(value["init_args"])
        return original(value, *args, **kwargs)

    adapt_class_type._da_toolkit = True  # type: ignore[attr-defined]
    _typehints.adapt_class_type = adapt_class_type


#: a help entry lists the known subclasses of its type only up to this many
MAX_LISTED_SUBCLASSES = 12


def shorten_subclass_help() -> None:
    """Keep ``--help`` readable: a parameter typed ``nn.Module`` (a loss, a perturbation...) made
    jsonargparse list every importable module class (thousands of lines for ``--model.help
    TeacherTask``). Above :data:`MAX_LISTED_SUBCLASSES` the entry names the accepted base
    class(es) and points to ``da-toolkit plugins`` for the registered components instead."""
    import typing

    from jsonargparse import _typehints

    action = _typehints.ActionTypeHint
    if getattr(action.extra_help, "_da_toolkit", False):
        return
    original = action.extra_help

    def extra_help(self: Any) -> str:
        paths = _typehints.get_all_subclass_paths(self._typehint, closed_types=False)
        if len(paths) <= MAX_LISTED_SUBCLASSES:
            return original(self)
        bases = [a for a in (typing.get_args(self._typehint) or (self._typehint,)) if isinstance(a, type)
                 and a is not type(None)]
        names = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in bases) or "the annotated type"
        return (f", accepts: any subclass of {names} ({len(paths)} importable; registered components by name: "
                f"`da-toolkit plugins`)")

    extra_help._da_toolkit = True  # type: ignore[attr-defined]
    action.extra_help = extra_help


def run_lightning_cli(argv: Sequence[str], run: bool = True, report: bool = True) -> DepthLightningCLI:
    """Parse ``argv`` (``[subcommand, options...]`` when ``run``) and run it.

    Errors in recipes (unknown class names, wrong types, missing required values, values a
    constructor refuses) are one line naming the file and the key, before any training: printed
    with exit status 2 (:class:`SystemExit`), or with ``report=False`` raised as
    :class:`~da_toolkit.cli.checks.RecipeError` (the pipeline names the stage).
    """
    try:
        return build_lightning_cli(argv, run)
    except RecipeError as exc:
        if not report:
            raise
        print(f"da-toolkit: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build_lightning_cli(argv: Sequence[str], run: bool = True) -> DepthLightningCLI:
    """:func:`run_lightning_cli` without the report: every recipe error is a :class:`RecipeError`."""
    from da_toolkit.plugins import get_registry

    get_registry()  # load plugins so their classes are imported before parsing
    try:
        precheck_args(argv)  # missing files, bad YAML, misspelled registered names: before Lightning is imported
    except (UnknownClassPathError, FileNotFoundError, ValueError) as exc:
        raise exc if isinstance(exc, RecipeError) else RecipeError(str(exc)) from None
    import lightning.pytorch as pl

    from da_toolkit.cli.depth_cli import DepthLightningCLI, SafeSaveConfigCallback

    import_resolvable_classes()
    shorten_subclass_help()

    with tempfile.TemporaryDirectory(prefix="da_toolkit_cli_") as tmpdir:
        try:
            args = preprocess_args(argv, tmpdir)
        except (UnknownClassPathError, FileNotFoundError, ValueError) as exc:
            raise exc if isinstance(exc, RecipeError) else RecipeError(str(exc)) from None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
            try:
                return DepthLightningCLI(
                    pl.LightningModule,
                    pl.LightningDataModule,
                    subclass_mode_model=True,
                    subclass_mode_data=True,
                    args=args,
                    run=run,
                    save_config_callback=SafeSaveConfigCallback,
                    save_config_kwargs={"overwrite": True},
                    parser_kwargs={"prog": "da-toolkit"},
                    # no --optimizer/--lr_scheduler: they would silently replace the task's own
                    # optimiser (`optim`) and its encoder/decoder learning rates (issue 19.6)
                    auto_configure_optimizers=False,
                )
            except RecipeError:
                raise
            except (ValueError, TypeError) as exc:  # a task's build-time contract check (issue 14.3)
                contract = contract_error(exc) or weights_file_error(exc)
                if contract is None:
                    raise
                raise RecipeError(str(contract)) from None


def parse_only(config: dict[str, Any], where: str, cli_class: type[DepthLightningCLI] | None = None,
               model_class: type | None = None, data_class: type | None = None,
               group_classes: dict[str, type] | None = None, **cli_kwargs: Any) -> Any:
    """Parse and check a config (dict) as its command would, building nothing.

    Returns the parsed config (a jsonargparse Namespace). Raises :class:`RecipeError` naming
    ``where`` and the field for anything the command would refuse (unknown keys, wrong types,
    bad class paths, a crop size the model cannot take).
    """
    import lightning.pytorch as pl

    from da_toolkit.cli.depth_cli import DepthLightningCLI, ParsedConfig
    from da_toolkit.cli.model_forms import ModelFormError
    from da_toolkit.plugins import get_registry

    get_registry()
    import_resolvable_classes()
    base = cli_class or DepthLightningCLI
    model_class = model_class or pl.LightningModule
    data_class = data_class or pl.LightningDataModule

    class _ParseOnly(base):  # type: ignore[valid-type, misc]
        parse_only = True

    kwargs: dict[str, Any] = {"subclass_mode_model": True, "subclass_mode_data": True,
                              "auto_configure_optimizers": False}
    kwargs.update(cli_kwargs)
    parser_kwargs = {"exit_on_error": False, **dict(kwargs.pop("parser_kwargs", {}))}
    with tempfile.TemporaryDirectory(prefix="da_toolkit_parse_") as tmpdir:
        path = Path(tmpdir) / "stage.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        try:
            args = preprocess_args(["--config", str(path)], tmpdir, group_classes)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                _ParseOnly(model_class, data_class, args=args, run=False, save_config_callback=None,
                           parser_kwargs=parser_kwargs, **kwargs)
        except ParsedConfig as parsed:
            return parsed.config
        except ConfigValueError as exc:  # "recipe.yaml: stages.teacher.config" + ".model.init_args...: detail"
            source, _, prefix = where.rpartition(": ")
            raise exc.located(source or prefix, prefix if source else "") from None
        except (RecipeError, ModelFormError, UnknownClassPathError) as exc:
            raise RecipeError(f"{where}: {exc}") from None
        except (ArgumentError, ValueError, TypeError) as exc:
            raise RecipeError(f"{where}: {parse_error_line(str(exc))}") from None
    raise RecipeError(f"{where}: the config was not parsed")  # pragma: no cover


def parse_fit_config(config: dict[str, Any], where: str) -> Any:
    """:func:`parse_only` for a ``da-toolkit fit`` config."""
    return parse_only(config, where)


def _subcommand(name: str) -> Callable[[list[str]], int]:
    def command(argv: list[str]) -> int:
        if name == "predict":  # --output_dir DIR: one folder for everything the run writes (issue 19.10)
            from da_toolkit.inference.output_dir import output_dir_args

            try:
                argv = output_dir_args(argv)
            except ValueError as exc:
                print(f"da-toolkit {name}: error: {exc}", file=sys.stderr)
                return 2
        try:
            cli = run_lightning_cli([name, *argv])
        except Exception as exc:
            # imported only now: a recipe refused before parsing costs no torch/Lightning import
            from da_toolkit.inference.guards import UsageError
            from da_toolkit.tasks.checkpointing import CheckpointReadError

            # UsageError: e.g. predict's bad inputs, a model with no weights loaded;
            # CheckpointReadError: --ckpt_path unsafe / unreadable (names the file)
            if not isinstance(exc, (UsageError, CheckpointReadError)):
                raise
            print(f"da-toolkit {name}: error: {exc}", file=sys.stderr)
            return 2
        # a module may report the run's outcome (DepthPredictionTask: 1 when inputs/writes failed)
        return int(getattr(cli.model, "exit_status", 0) or 0)

    command.__name__ = name
    command.__doc__ = (f"``da-toolkit {name} ...``: LightningCLI's ``{name}`` subcommand; returns the exit status "
                       "(2: a usage error; else the module's ``exit_status``, default 0).")
    return command


fit = _subcommand("fit")
validate = _subcommand("validate")
test = _subcommand("test")
predict = _subcommand("predict")
