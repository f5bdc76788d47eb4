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

import logging
import os
import sys
import tempfile
import warnings
from argparse import ArgumentError
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from da_toolkit.cli.checks import RecipeError, parse_error_line
from da_toolkit.cli.class_paths import (
    UnknownClassPathError,
    import_resolvable_classes,
    resolve_class_path,
    resolve_config,
)
from da_toolkit.cli.config_files import load_config_file
from da_toolkit.cli.recipe_errors import ConfigValueError, register_origin

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
    resolved = expand_config(data, file.name, group_classes, deferred)
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


#: first line of every resolved config da-toolkit saves; a file without it is never overwritten
SAVED_CONFIG_HEADER = "# resolved run config, written by da-toolkit (re-runs overwrite this file)\n"


class SafeSaveConfigCallback(SaveConfigCallback):
    """Saves the resolved config as ``<log_dir>/config.yaml`` without ever clobbering a user file.

    Re-runs overwrite a config this callback wrote before (it starts with
    :data:`SAVED_CONFIG_HEADER`); any other existing file of that name (e.g. the user's own recipe
    in the working directory when ``logger: false``) is left untouched and the config goes to
    ``config.da-toolkit.yaml`` instead, with a warning.
    """

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning hook: decide where the config is saved (every rank takes part); never over another run's."""
        self._target: Path | None = None
        if not self.already_saved and self.save_to_log_dir:
            log_dir = trainer.log_dir  # a collective call (broadcast): every rank must make it
            if trainer.is_global_zero and log_dir:
                target = Path(log_dir) / self.config_filename
                if target.is_file() and not _saved_by_us(target):
                    fallback = target.with_name(f"{target.stem}.da-toolkit{target.suffix}")
                    warnings.warn(f"da-toolkit: {target} exists and was not written by da-toolkit; leaving "
                                  f"it untouched and saving the run's config to {fallback}", UserWarning,
                                  stacklevel=2)
                    self.config_filename = fallback.name
                self._target = Path(log_dir) / self.config_filename
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Write the parsed config (rank zero), marked as written by the toolkit."""
        # runs on rank zero only: no collective calls here (trainer.log_dir would broadcast)
        path = getattr(self, "_target", None)
        if path is not None and path.is_file() and not _saved_by_us(path):
            from da_toolkit.data.io import atomic_write_bytes

            atomic_write_bytes(path, (SAVED_CONFIG_HEADER + path.read_text()).encode())


def _saved_by_us(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readline() == SAVED_CONFIG_HEADER


class DepthLightningCLI(LightningCLI):
    """LightningCLI with da-toolkit's trainer conveniences and checks (see the module docstring).

    Before anything is instantiated: an integer ``trainer.val_check_interval`` is made to count
    training steps across epochs (:func:`~da_toolkit.cli.checks.adapt_val_check_interval`), and a
    ``data.init_args.crop_size`` that is not a multiple of the models' input multiple is refused
    (:func:`~da_toolkit.cli.checks.check_crop_size`, :class:`~da_toolkit.cli.checks.RecipeError`).
    With ``parse_only`` the parsed config is raised as :class:`ParsedConfig` instead of being
    instantiated (the pipeline validates every stage that way before running the first).
    """

    parse_only: bool = False

    def init_parser(self, **kwargs: Any) -> Any:
        """The parser (main and subcommands) raises ``ArgumentError`` instead of printing usage and
        the whole config: :meth:`parse_arguments` makes it one line (issue 14.4)."""
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse; a refused value is a :class:`~da_toolkit.cli.recipe_errors.ConfigValueError`
        naming the file, the full key, what was expected and what came."""
        from da_toolkit.cli.recipe_errors import from_parser_message

        self._recipe_args = [str(a) for a in args] if isinstance(args, (list, tuple)) else []
        try:
            super().parse_arguments(parser, args)
            self._seed_log = HeldLog(SEED_LOGGER)  # "Seed set to N" only once the classes are built
        except ArgumentError as exc:
            subcommand = next((a for a in self._recipe_args if not a.startswith("-")), None)
            sub = getattr(self, "_subcommand_parsers", {}).get(subcommand, parser)
            options = [a.dest for a in sub._actions if isinstance(getattr(a, "dest", None), str)]
            command = f"{parser.prog} {subcommand}" if subcommand in getattr(self, "_subcommand_parsers", {}) \
                else parser.prog
            raise from_parser_message(str(exc), self._recipe_args, options, command) from None

    def instantiate_classes(self) -> None:
        """Build the classes; a value a constructor refuses is a one-line
        :class:`~da_toolkit.cli.recipe_errors.ConfigValueError` naming its key (not a traceback)."""
        held = getattr(self, "_seed_log", None)
        try:
            super().instantiate_classes()
        except Exception as exc:  # noqa: BLE001 - only constructor refusals are converted, the rest re-raised
            if held is not None:
                held.release(emit=False)
            error = self._constructor_error(exc)
            if error is None:
                raise
            raise error from None
        if held is not None:
            held.release(emit=True)

    def _constructor_error(self, exc: Exception) -> ConfigValueError | None:
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        from da_toolkit.cli.recipe_errors import debug_mode, from_constructor

        if debug_mode() or contract_error(exc) is not None or weights_file_error(exc) is not None:
            return None  # those have their own one-line reports (run_lightning_cli)
        config = self.config[self.subcommand] if self.subcommand else self.config
        return from_constructor(exc, config, groups={"trainer": pl.Trainer}, args=getattr(self, "_recipe_args", ()),
                                kinds=(ValueError, TypeError, OSError, MisconfigurationException))

    def before_instantiate_classes(self) -> None:
        """Adapt val_check_interval and check crop sizes against the models before anything is built."""
        from da_toolkit.cli.checks import adapt_val_check_interval, check_crop_size
        from da_toolkit.cli.recipe_errors import source_of

        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("trainer") is not None:
            adapt_val_check_interval(config.trainer)
        held = getattr(self, "_seed_log", None)
        try:
            check_crop_size(config)
        except ConfigValueError as exc:
            if held is not None:
                held.release(emit=False)
            raise exc.located(source_of(exc.key, getattr(self, "_recipe_args", ()))) from None
        if self.parse_only:
            if held is not None:
                held.release(emit=False)
            raise ParsedConfig(config)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Build the Trainer, then install the toolkit's checkpointing (atomic saves, last.ckpt)."""
        trainer = super().instantiate_trainer(**kwargs)
        configure_checkpointing(trainer)
        return trainer

    def _parse_ckpt_path(self) -> None:
        """Check a ``--ckpt_path`` file before LightningCLI unpickles its hyper-parameters.

        LightningCLI reads the file with a bare ``torch.load`` whose refusal of an unsafe file
        names no file and suggests ``weights_only=False``. Here the archive is checked first
        (:func:`~da_toolkit.models.weights.safe.check_torch_archive`: disallowed globals,
        compressed or oversized records, nothing inflated or run): an unsafe file is an
        :class:`~da_toolkit.tasks.checkpointing.UnsafeCheckpointError` naming it (the command prints
        one line, exit 2). A file Lightning cannot read contributes no hyper-parameters; the
        trainer's checkpoint loading then reports it by name (or falls back from a bad ``last.ckpt``).
        """
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not path or not Path(path).is_file():
            super()._parse_ckpt_path()
            return
        from da_toolkit.models.weights.errors import UnsafeCheckpointError as UnsafeWeights
        from da_toolkit.models.weights.errors import WeightsError
        from da_toolkit.models.weights.safe import check_torch_archive
        from da_toolkit.tasks.checkpointing import UnsafeCheckpointError

        try:
            check_torch_archive(Path(path))
        except UnsafeWeights as exc:
            raise UnsafeCheckpointError(f"--ckpt_path {exc}") from None
        except WeightsError:
            return  # corrupt or crafted: the trainer's checkpoint loading names it (never inflated here)
        try:
            super()._parse_ckpt_path()
        except ArgumentError as exc:  # the file's hyper-parameters do not fit this config
            from da_toolkit.cli.recipe_errors import from_parser_message

            error = from_parser_message(str(exc))
            raise error.located(f"--ckpt_path {path}: hyper-parameters", "") from None
        except Exception:  # noqa: BLE001 - garbage bytes make torch's unpickler raise anything
            # (UnpicklingError, IndexError, KeyError, UnicodeDecodeError...): the file is then
            # reported by name by the trainer's checkpoint loading, never here
            return


#: the logger of Lightning's "Seed set to N" line
SEED_LOGGER = "lightning.fabric.utilities.seed"


class HeldLog(logging.Filter):
    """Holds the records of one logger until :meth:`release`: LightningCLI logs "Seed set to N"
    before the classes are built, so a refused config would print it above its one-line error."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.logger = logging.getLogger(name)
        self.records: list[logging.LogRecord] = []
        self.logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record for later; nothing is emitted now."""
        self.records.append(record)
        return False

    def release(self, emit: bool) -> None:
        """Stop holding; emit the held records (``emit``) or drop them. Idempotent."""
        self.logger.removeFilter(self)
        records, self.records = self.records, []
        for record in records if emit else ():
            self.logger.handle(record)


class ParsedConfig(Exception):
    """Raised by a ``parse_only`` :class:`DepthLightningCLI` with the parsed, checked config."""

    def __init__(self, config: Any) -> None:
        super().__init__("parsed")
        self.config = config


def configure_checkpointing(trainer: pl.Trainer) -> None:
    """Give every ModelCheckpoint a stable ``dirpath`` and ``save_last=True``; save atomically.

    Checkpoints are written through :class:`~da_toolkit.tasks.checkpointing.AtomicCheckpointIO`
    (same-folder temp file + rename; an unreadable ``last.ckpt`` falls back on resume) unless the
    trainer was given its own ``CheckpointIO``.
    """
    from da_toolkit.tasks.checkpointing import install_atomic_checkpoint_io

    install_atomic_checkpoint_io(trainer)
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            if cb.dirpath is None:
                cb.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
            if not cb.save_last:
                cb.save_last = True


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


def contract_error(exc: BaseException) -> BaseException | None:
    """The encoder/loss contract error behind ``exc`` (jsonargparse wraps errors raised by a
    constructor in a union-type message), or ``None``; its message is one line naming the key."""
    from da_toolkit.losses.contract import LossContractError
    from da_toolkit.models.contract import EncoderContractError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (EncoderContractError, LossContractError)):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def weights_file_error(exc: BaseException) -> BaseException | None:
    """The missing or unloadable weights file behind ``exc`` (a model built with ``weights: FILL_ME``,
    a file of another architecture), or ``None``; jsonargparse wraps it in a union-type message."""
    from da_toolkit.models.weights.errors import WeightsError

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, (FileNotFoundError, WeightsError)) and cause is not exc:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def parse_only(config: dict[str, Any], where: str, cli_class: type[DepthLightningCLI] | None = None,
               model_class: type = pl.LightningModule, data_class: type = pl.LightningDataModule,
               group_classes: dict[str, type] | None = None, **cli_kwargs: Any) -> Any:
    """Parse and check a config (dict) as its command would, building nothing.

    Returns the parsed config (a jsonargparse Namespace). Raises :class:`RecipeError` naming
    ``where`` and the field for anything the command would refuse (unknown keys, wrong types,
    bad class paths, a crop size the model cannot take).
    """
    from da_toolkit.cli.model_forms import ModelFormError
    from da_toolkit.plugins import get_registry

    get_registry()
    import_resolvable_classes()
    base = cli_class or DepthLightningCLI

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
        from da_toolkit.inference.guards import UsageError
        from da_toolkit.tasks.checkpointing import CheckpointReadError

        if name == "predict":  # --output_dir DIR: one folder for everything the run writes (issue 19.10)
            from da_toolkit.inference.output_dir import output_dir_args

            try:
                argv = output_dir_args(argv)
            except ValueError as exc:
                print(f"da-toolkit {name}: error: {exc}", file=sys.stderr)
                return 2
        try:
            cli = run_lightning_cli([name, *argv])
        except UsageError as exc:  # e.g. predict: bad inputs, a model with no weights loaded
            print(f"da-toolkit {name}: error: {exc}", file=sys.stderr)
            return 2
        except CheckpointReadError as exc:  # --ckpt_path unsafe / unreadable: names the file
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
