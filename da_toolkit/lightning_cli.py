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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from da_toolkit.tasks.config_names import UnknownClassPathError, resolve_class_path, resolve_config

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


class DepthLightningCLI(LightningCLI):
    """LightningCLI with da-toolkit's trainer conveniences (see the module docstring)."""

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        configure_checkpointing(trainer)
        return trainer


def configure_checkpointing(trainer: pl.Trainer) -> None:
    """Give every ModelCheckpoint a stable ``dirpath`` and ``save_last=True``."""
    for cb in trainer.checkpoint_callbacks:
        if isinstance(cb, ModelCheckpoint):
            if cb.dirpath is None:
                cb.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
            if not cb.save_last:
                cb.save_last = True


#: modules imported before parsing so that bare class names of their classes resolve
RESOLVABLE_MODULES = (
    "da_toolkit.tasks",
    "da_toolkit.tasks.student_data",
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
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": "da-toolkit"},
            )
