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

import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from da_toolkit.cli.class_paths import UnknownClassPathError, resolve_class_path, resolve_config

CONFIG_FLAGS = ("--config", "-c")


def _resolve_config_file(path: str, tmpdir: str, index: int) -> str:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"--config {path}: invalid YAML: {exc}") from None
    if data is None:
        return path
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping at the top level, got {type(data).__name__}")
    resolved = resolve_config(data, where=file.name)
    if resolved == data:
        return path
    out = Path(tmpdir) / f"{index:02d}_{file.name}"
    out.write_text(yaml.safe_dump(resolved, sort_keys=False))
    return str(out)


def preprocess_args(argv: Sequence[str], tmpdir: str) -> list[str]:
    """Resolve registered names in ``--config`` files and ``--*.class_path`` arguments."""
    args = list(argv)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        key, eq, value = arg.partition("=")
        if key in CONFIG_FLAGS or key.endswith("class_path"):
            if not eq and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            elif not eq:
                out.append(arg)
                i += 1
                continue
            if key in CONFIG_FLAGS:
                value = _resolve_config_file(value, tmpdir, len(out))
            else:
                value = resolve_class_path(value, key.lstrip("-"))
            out.append(f"{key}={value}")
        else:
            out.append(arg)
        i += 1
    return out


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
        # runs on rank zero only: no collective calls here (trainer.log_dir would broadcast)
        path = getattr(self, "_target", None)
        if path is not None and path.is_file() and not _saved_by_us(path):
            from da_toolkit.data.io import atomic_write_bytes

            atomic_write_bytes(path, (SAVED_CONFIG_HEADER + path.read_text()).encode())


def _saved_by_us(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.readline() == SAVED_CONFIG_HEADER


class DepthLightningCLI(LightningCLI):
    """LightningCLI with da-toolkit's trainer conveniences (see the module docstring)."""

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        configure_checkpointing(trainer)
        return trainer


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


def import_resolvable_classes() -> None:
    """Import the toolkit's tasks, data modules and Lightning's callbacks/loggers (best effort)."""
    import importlib

    for name in RESOLVABLE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a missing optional part must not break the others
            warnings.warn(f"da-toolkit: could not import {name}: {exc}", RuntimeWarning, stacklevel=2)


def run_lightning_cli(argv: Sequence[str], run: bool = True) -> DepthLightningCLI:
    """Parse ``argv`` (``[subcommand, options...]`` when ``run``) and run it.

    Errors in recipes (unknown class names, wrong types, missing required values) are reported
    with the offending key before anything is instantiated.
    """
    from da_toolkit.plugins import get_registry

    get_registry()  # load plugins so their classes are imported before parsing
    import_resolvable_classes()

    with tempfile.TemporaryDirectory(prefix="da_toolkit_cli_") as tmpdir:
        try:
            args = preprocess_args(argv, tmpdir)
        except (UnknownClassPathError, FileNotFoundError, ValueError) as exc:
            print(f"da-toolkit: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
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
            )


def _subcommand(name: str) -> Callable[[list[str]], int]:
    def command(argv: list[str]) -> int:
        from da_toolkit.inference.guards import UsageError

        try:
            cli = run_lightning_cli([name, *argv])
        except UsageError as exc:  # e.g. predict: bad inputs, a model with no weights loaded
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
