"""The LightningCLI class of ``da-toolkit fit|validate|test|predict`` and its trainer conveniences.

This module imports Lightning; :mod:`da_toolkit.cli.lightning_cli` (the commands, the recipe
preprocessing) imports it only once a config has passed the cheap checks, so a recipe error that
needs no parsing costs no ``import lightning``.

* :class:`DepthLightningCLI` - parsers with one-line errors (:mod:`~da_toolkit.cli.recipe_errors`),
  the checks of :mod:`~da_toolkit.cli.checks` before anything is built, the toolkit's checkpointing;
* :class:`SafeSaveConfigCallback` - saves the resolved config without clobbering a user's file;
* :func:`configure_checkpointing` - ``dirpath``/``save_last`` defaults, atomic checkpoint writes.
"""

from __future__ import annotations

import logging
import os
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from da_toolkit.cli.recipe_errors import ConfigValueError, contract_error

__all__ = ["SAVED_CONFIG_HEADER", "DepthLightningCLI", "HeldLog", "ParsedConfig", "SafeSaveConfigCallback",
           "configure_checkpointing"]


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

        if debug_mode() or contract_error(exc) is not None:
            return None  # contract errors name their key already (run_lightning_cli reports them)
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
