"""Lightning's "Found N module(s) in eval mode" warning, for the modules a task freezes on purpose.

At the start of ``fit`` Lightning warns about every sub-module that is not in training mode. A
student's frozen alignment encoder and its online teacher are in eval mode by design (frozen
parameters, no dropout/batch-norm updates: SPEC 3), so the warning is expected there.
:class:`FrozenEvalModeNote` silences it when the modules in eval mode are exactly those inside
frozen sub-models (eval mode, every parameter ``requires_grad=False``); any other module left in
eval mode changes the count, and the warning is shown as Lightning writes it.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import lightning.pytorch as pl
from torch import nn

__all__ = ["FrozenEvalModeNote", "frozen_eval_modules"]


def _is_frozen_root(module: nn.Module) -> bool:
    params = list(module.parameters())
    return not module.training and bool(params) and not any(p.requires_grad for p in params)


def frozen_eval_modules(model: nn.Module) -> list[str]:
    """Names of the modules in eval mode that lie inside a frozen sub-model of ``model`` (one in
    eval mode whose parameters are all frozen, e.g. ``frozen_encoder``, ``teacher``)."""
    roots: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(r + ".") for r in roots):
            continue
        if name and _is_frozen_root(module):
            roots.append(name)
    return [name for name, module in model.named_modules()
            if not module.training and any(name == r or name.startswith(r + ".") for r in roots)]


class FrozenEvalModeNote(pl.Callback):
    """Silence Lightning's eval-mode warning for a task's frozen sub-models only (module docstring).

    The count of frozen modules is taken at ``on_fit_start``; the filter is active until
    ``on_train_start`` (Lightning warns in between) and removed on an exception or teardown.
    """

    def __init__(self) -> None:
        self._context: Any = None
        #: names of the frozen modules in eval mode seen at the last ``fit`` start
        self.frozen: list[str] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Count the frozen modules in eval mode; silence the warning of exactly that count."""
        self._release()
        self.frozen = frozen_eval_modules(pl_module)
        if not self.frozen:
            return
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.filterwarnings(
            "ignore", message=rf"Found {len(self.frozen)} module\(s\) in eval mode at the start of training")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Lightning has warned (or not): restore the warning filters."""
        self._release()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        """Restore the warning filters."""
        self._release()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Restore the warning filters."""
        self._release()

    def _release(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None


#: the warning's text (Lightning 2.x), for tests and docs
WARNING_PATTERN = re.compile(r"Found (\d+) module\(s\) in eval mode at the start of training")
