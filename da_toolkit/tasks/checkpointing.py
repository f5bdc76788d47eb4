"""Crash-safe Lightning checkpoints: atomic same-folder saves and a resume that survives a bad file.

Lightning's default :class:`~lightning.fabric.plugins.io.torch_io.TorchCheckpointIO` writes a
checkpoint through a temporary file in ``$TMPDIR`` and then *moves* it onto the final name. When
the run folder and ``$TMPDIR`` are on different filesystems (run folders on NFS/Lustre, ``/tmp``
node-local: the usual cluster layout) that move is "truncate ``last.ckpt``, then copy", so a kill
during the copy leaves a truncated ``last.ckpt`` and the previous good checkpoint is gone.

:class:`AtomicCheckpointIO` instead writes ``.<name>.<random>.tmp`` in the checkpoint's own folder,
fsyncs it, ``os.replace``-s it onto the final name and fsyncs the folder: the previous file stays
complete until the new one is, and nothing checkpoint-sized is written to ``$TMPDIR``. Loading a
``last*.ckpt`` that cannot be read falls back to the newest loadable ``.ckpt`` in the same folder
with a warning naming both files; any other unreadable checkpoint (or no loadable fallback) is a
:class:`CheckpointReadError` naming the file and what to do. A file that refers to a disallowed
global is an :class:`UnsafeCheckpointError` and is never skipped over silently.

Use it with :func:`install_atomic_checkpoint_io` on a built trainer (the CLI does this), or in a
recipe as ``trainer: {plugins: [da_toolkit.tasks.checkpointing.AtomicCheckpointIO]}``.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

__all__ = [
    "AtomicCheckpointIO",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "atomic_torch_save",
    "install_atomic_checkpoint_io",
    "is_rolling_checkpoint",
]

#: names Lightning's ModelCheckpoint gives the rolling "last" checkpoint (last.ckpt, last-v1.ckpt)
_LAST_RE = re.compile(r"^last(-v?\d+)?\.ckpt$")
_TMP_SUFFIX = ".tmp"


class CheckpointReadError(RuntimeError):
    """A checkpoint file could not be read; the message names the file and what to do."""


class UnsafeCheckpointError(CheckpointReadError):
    """A checkpoint whose unpickling would import a disallowed global; never loaded, never skipped."""


def _is_local(path: _PATH) -> bool:
    text = str(path)
    return "://" not in text or text.startswith("file://")


def _local(path: _PATH) -> Path:
    text = str(path)
    return Path(text.removeprefix("file://"))


def _remove_stale_temps(target: Path) -> None:
    """Remove temporary files a killed earlier save of ``target`` left behind (same naming scheme)."""
    prefix = f".{target.name}."
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(_TMP_SUFFIX):
            entry.unlink(missing_ok=True)


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically, through a temporary file in ``path``'s folder.

    The temporary file is fsync'd, given the mode an ordinary write would give ``path``, renamed
    onto ``path`` with ``os.replace`` and the folder is fsync'd. Until the rename, an existing
    ``path`` is untouched; on any error the temporary file is removed. Temporary files of an
    earlier, killed save of the same ``path`` are removed first.
    """
    from da_toolkit.data.io import fsync_dir, ordinary_file_mode

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def is_rolling_checkpoint(path: str | os.PathLike[str]) -> bool:
    """True for the names ModelCheckpoint gives its rolling checkpoint (``last.ckpt``, ``last-v1.ckpt``)."""
    return bool(_LAST_RE.match(Path(path).name))


_UNSAFE_RE = re.compile(r"unsupported global", re.IGNORECASE)
#: lines of torch's weights-only error text that are advice, not the cause (one suggests
#: ``weights_only=False``, which our messages never do)
_ADVICE = ("weights only load failed", "weights_only", "check the documentation", "please file an issue")


def _is_unsafe(exc: BaseException) -> bool:
    """A ``weights_only`` refusal of a disallowed global (not merely a corrupt file)."""
    return isinstance(exc, pickle.UnpicklingError) and bool(_UNSAFE_RE.search(str(exc)))


def _reason(exc: BaseException) -> str:
    """``Type: cause`` of a load error, without torch's advice lines, at most ~200 characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    causes = [ln for ln in lines if not any(a in ln.lower() for a in _ADVICE)]
    cause = (causes[0] if causes else "")[:200]
    return f"{type(exc).__name__}: {cause}" if cause else type(exc).__name__


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` that saves atomically in the checkpoint's folder (see the module doc).

    Remote (``s3://`` ...) paths are handed to Lightning's implementation unchanged.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        """Save atomically: write next to ``path``, fsync, rename, fsync the folder."""
        if storage_options is not None or not _is_local(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, _local(path))

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Load a local checkpoint after the safety checks (unsafe or corrupt records refused); others as Lightning."""
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        file = _local(path)
        if not file.is_file():
            raise FileNotFoundError(f"checkpoint {file}: no such file")
        try:
            return self._load(file, map_location, weights_only)
        except UnsafeCheckpointError:
            raise
        except CheckpointReadError as exc:
            first_error = exc
        if not is_rolling_checkpoint(file):
            raise first_error
        for candidate in self._fallbacks(file):
            try:
                checkpoint = self._load(candidate, map_location, weights_only)
            except CheckpointReadError:
                continue
            rank_zero_warn(
                f"da-toolkit: {first_error}; resuming from {candidate} instead (the newest loadable "
                f"checkpoint in {file.parent}). Training steps saved only in {file.name} are lost."
            )
            return checkpoint
        raise CheckpointReadError(
            f"{first_error}; no other loadable .ckpt in {file.parent}. Delete or move {file} and re-run "
            "without --ckpt_path to start from scratch, or pass --ckpt_path a good checkpoint"
        ) from None

    def _load(self, file: Path, map_location: Any, weights_only: bool | None) -> dict[str, Any]:
        if weights_only is not False:  # compressed / oversized records, disallowed globals: refuse unread
            from da_toolkit.models.weights.errors import (
                UnsafeCheckpointError as UnsafeWeights,
            )
            from da_toolkit.models.weights.errors import WeightsError
            from da_toolkit.models.weights.safe import check_torch_archive

            try:
                check_torch_archive(file)
            except UnsafeWeights as exc:
                raise UnsafeCheckpointError(f"checkpoint {exc} (unsafe: not loaded)") from None
            except WeightsError as exc:
                raise CheckpointReadError(f"checkpoint {exc}") from None
        try:
            checkpoint = super().load_checkpoint(file, map_location=map_location, weights_only=weights_only)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch/pickle/zip raise many types for a bad file
            if _is_unsafe(exc):
                raise UnsafeCheckpointError(
                    f"checkpoint {file} refers to code outside the allowed types (unsafe to load: it could "
                    f"run code); it was not loaded ({_reason(exc)})"
                ) from None
            size = file.stat().st_size if file.exists() else 0
            raise CheckpointReadError(
                f"checkpoint {file} is unreadable ({size} bytes; corrupt, truncated or not a checkpoint: "
                f"{_reason(exc)})"
            ) from None
        if not isinstance(checkpoint, dict):
            raise CheckpointReadError(f"checkpoint {file}: expected a dict, got {type(checkpoint).__name__}")
        return checkpoint

    @staticmethod
    def _fallbacks(file: Path) -> list[Path]:
        """Other ``.ckpt`` files of ``file``'s folder, newest first (by modification time)."""
        others = []
        for entry in file.parent.iterdir():
            if entry.suffix == ".ckpt" and entry.name != file.name and entry.is_file():
                try:
                    others.append((entry.stat().st_mtime, entry.name, entry))
                except OSError:
                    continue
        return [p for _, _, p in sorted(others, reverse=True)]

def install_atomic_checkpoint_io(trainer: Any) -> bool:
    """Make ``trainer`` save through :class:`AtomicCheckpointIO`; call before ``fit``.

    Replaces Lightning's default :class:`TorchCheckpointIO` (also when wrapped, e.g. by
    ``AsyncCheckpointIO``); a user-chosen custom ``CheckpointIO`` is left alone. Returns whether
    the trainer now uses an :class:`AtomicCheckpointIO`.
    """
    strategy = trainer.strategy
    current = strategy.checkpoint_io
    if isinstance(current, AtomicCheckpointIO):
        return True
    if type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
        return True
    inner = getattr(current, "checkpoint_io", None)  # _WrappingCheckpointIO (AsyncCheckpointIO)
    if isinstance(inner, AtomicCheckpointIO):
        return True
    if type(inner) is TorchCheckpointIO:
        current.checkpoint_io = AtomicCheckpointIO()
        return True
    return False
