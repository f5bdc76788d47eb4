"""Child process of the checkpoint SIGKILL test: fits a tiny model, pausing inside a chosen save.

Usage: ``python ckpt_kill_child.py RUN_DIR PAUSE_AT_SAVE MARKER IO`` where ``IO`` is ``atomic``
(:class:`da_toolkit.tasks.checkpointing.AtomicCheckpointIO`) or ``lightning`` (Lightning's
default, to show the old defect by hand). During save number ``PAUSE_AT_SAVE`` (1-based), the
first write into ``RUN_DIR/checkpoints`` writes half its bytes, creates ``MARKER`` and then waits
to be killed. That point is the same for both implementations: for Lightning's default it is the
copy from ``$TMPDIR`` onto ``last.ckpt`` (after the truncation), for the atomic one the write of
the temporary file next to it. (``shutil``'s sendfile fast path is turned off so that the copy
goes through ``write`` and can be paused.)
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Self

import torch
from torch import nn

STEPS = 6


class Tiny:
    """Factory of a tiny LightningModule (import of lightning deferred to :func:`main`)."""

    @staticmethod
    def make():
        import lightning.pytorch as pl

        class TinyModule(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Linear(64, 256)  # ~66 KB of weights + Adam state: a multi-write save

            def training_step(self, batch, batch_idx):
                return self.net(batch[0]).pow(2).mean()

            def configure_optimizers(self):
                return torch.optim.Adam(self.parameters(), lr=1e-3)

            def train_dataloader(self):
                data = torch.utils.data.TensorDataset(torch.randn(32, 64))
                return torch.utils.data.DataLoader(data, batch_size=4)

        return TinyModule()


def build_trainer(run_dir: Path, io_kind: str, max_steps: int = STEPS):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    from da_toolkit.tasks.checkpointing import install_atomic_checkpoint_io

    ckpt = ModelCheckpoint(dirpath=run_dir / "checkpoints", save_top_k=0, save_last=True, every_n_train_steps=1)
    trainer = pl.Trainer(default_root_dir=run_dir, max_steps=max_steps, callbacks=[ckpt], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
    if io_kind == "atomic":
        assert install_atomic_checkpoint_io(trainer)
    return trainer


def _install_pause(ckpt_dir: Path, pause_at: int, marker: Path, counter: dict[str, int]) -> None:
    shutil._USE_CP_SENDFILE = False  # type: ignore[attr-defined]
    real_open = io.open
    ckpt_dir = ckpt_dir.resolve()

    class Pausing:
        def __init__(self, handle: io.IOBase) -> None:
            self._handle = handle

        def write(self, data: bytes) -> int:
            if counter["saves"] == pause_at:
                half = bytes(memoryview(data)[: max(1, len(data) // 2)])
                self._handle.write(half)
                self._handle.flush()
                os.fsync(self._handle.fileno())
                marker.write_text(str(os.getpid()))
                while True:  # wait for SIGKILL
                    time.sleep(0.05)
            return self._handle.write(data)

        def __enter__(self) -> Self:
            return self

        def __exit__(self, *exc: object) -> None:
            self._handle.close()

        def __getattr__(self, name: str):
            return getattr(self._handle, name)

    def opening(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" not in mode and "a" not in mode and "+" not in mode:
            return handle
        name = os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.path.abspath(file)
        if Path(name).resolve().parent == ckpt_dir:
            return Pausing(handle)
        return handle

    builtins.open = opening
    io.open = opening


def main(argv: list[str]) -> int:
    run_dir, pause_at, marker, io_kind = Path(argv[0]), int(argv[1]), Path(argv[2]), argv[3]
    import lightning.pytorch as pl

    counter = {"saves": 0}

    class CountSaves(pl.Callback):
        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            counter["saves"] += 1

    trainer = build_trainer(run_dir, io_kind)
    trainer.callbacks.append(CountSaves())
    _install_pause(run_dir / "checkpoints", pause_at, marker, counter)
    trainer.fit(Tiny.make())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
