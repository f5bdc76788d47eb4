"""The shared LightningModule of every training task: model, optimiser, validation, safety.

Subclasses (:class:`~da_toolkit.tasks.teacher.TeacherTask`,
:class:`~da_toolkit.tasks.student.StudentTask`, :class:`~da_toolkit.tasks.metric.MetricTask`)
only implement :meth:`DepthTask.compute_loss`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.tasks.model_spec import freeze_unused_parameters
from da_toolkit.tasks.optim import OptimConfig, build_optimizer, param_groups
from da_toolkit.tasks.viz import prediction_panel

NonFinitePolicy = Literal["skip", "raise"]


def _component_name(module: nn.Module) -> str:
    """Registered component name of ``module``'s class (any kind), else the class name."""
    from da_toolkit.plugins import get_registry

    try:
        comp = get_registry().find_class(type(module))
    except Exception:  # noqa: BLE001 - a broken plugin must not stop training; fall back to the class
        comp = None
    return comp.name if comp is not None else type(module).__name__


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the build-time contract checks on one CPU thread (restored after): their dry calls are
    tiny, and on a loaded machine several threads per tiny op cost far more than they save
    (measured: tiny model check 3.5 ms median on 1 thread vs 45 ms, up to 1.6 s, on 2)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient was NaN/inf and the task was configured with ``nonfinite="raise"``."""


class DepthTask(pl.LightningModule):
    """Base task wrapping a pure :class:`~da_toolkit.models.depth_model.DepthModel`.

    Args:
        model: the network (recipes: ``class_path: DepthModel`` with typed ``init_args``:
            ``encoder``, ``decoder``, ``weights``, ``encoder_weights``, ...; the command line
            also takes a preset name or ``{preset: NAME, weights: ...}``, see
            :mod:`da_toolkit.cli.model_forms`). Checkpoints record its description under
            :data:`da_toolkit.models.description.CHECKPOINT_KEY`.
        optim: optimiser groups and schedule (:class:`~da_toolkit.tasks.optim.OptimConfig`).
        val_metrics: a ``DepthMetrics`` (torchmetrics) for validation/test; default: least-squares
            disparity alignment for relative models, no alignment for metric ones.
        log_images_every_n_steps: log colourised predictions every N training steps (0 = never).
        num_log_images: how many samples of the batch to log.
        nonfinite: NaN/inf loss or gradients: ``skip`` the optimiser step with a warning (weights
            untouched), or ``raise`` :class:`NonFiniteLossError`.
        check_contracts: when the task is built, check every component against its contract with
            one tiny dry call each (:func:`da_toolkit.models.contract.check_model` on ``model``,
            :func:`da_toolkit.losses.contract.check_loss` on the losses given), so that a lying
            encoder or a loss with the wrong signature is a one-line error naming the recipe key
            (``model.init_args.model``, ``model.init_args.labeled_loss``, ...) instead of a failure
            at the first training step. ``false`` skips them.
    """

    def __init__(
        self,
        model: DepthModel,
        optim: OptimConfig = OptimConfig(),  # noqa: B008 - frozen dataclass, immutable
        val_metrics: nn.Module | None = None,
        log_images_every_n_steps: int = 500,
        num_log_images: int = 2,
        nonfinite: NonFinitePolicy = "skip",
        check_contracts: bool = True,
    ) -> None:
        super().__init__()
        if nonfinite not in ("skip", "raise"):
            raise ValueError(f"nonfinite: expected 'skip' or 'raise', got {nonfinite!r}")
        self.save_hyperparameters(
            ignore=["model", "val_metrics", "labeled_loss", "gradient_loss", "unlabeled_loss",
                    "perturbation", "cutmix", "feature_loss", "frozen_encoder", "teacher", "seg_head",
                    "seg_loss", "loss"]
        )
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a DepthModel, got {type(model).__name__}")
        self.check_contracts = bool(check_contracts)
        if self.check_contracts:
            from da_toolkit.models.contract import check_model

            with one_thread():
                check_model(model, "model.init_args.model")
        self.model = model
        self.model.train()
        self.optim = optim
        if dataclasses.is_dataclass(optim):  # plain types only, so checkpoints load with weights_only=True
            self.hparams["optim"] = dataclasses.asdict(optim)
        self.val_metrics = val_metrics if val_metrics is not None else self.default_metrics()
        self.test_metrics = self.val_metrics.clone() if hasattr(self.val_metrics, "clone") else None
        #: parameters no forward pass uses (frozen so that plain DDP works), e.g. DINOv2's mask_token
        self.unused_parameters = freeze_unused_parameters(self.model, 2 * self.input_multiple)
        self.log_images_every_n_steps = log_images_every_n_steps
        self.num_log_images = num_log_images
        self.nonfinite = nonfinite
        #: number of optimiser steps skipped because of NaN/inf (also in the checkpoint)
        self.skipped_steps = 0

    def check_loss_contract(self, loss: nn.Module | None, form: Literal["labeled", "cutmix"], key: str) -> None:
        """:func:`~da_toolkit.losses.contract.check_loss` on a loss given in the recipe (``None``: nothing),
        naming ``model.init_args.<key>``; off with ``check_contracts=False``."""
        if loss is None or not self.check_contracts:
            return
        from da_toolkit.losses.contract import check_loss

        with one_thread():
            check_loss(loss, form, f"model.init_args.{key}")

    # ----------------------------------------------------------------------------- model
    @property
    def output_kind(self) -> str:
        """``"disparity"`` (relative) or ``"metric"`` (metres)."""
        return str(getattr(self.model, "output_kind", "disparity"))

    def default_metrics(self) -> nn.Module:
        """Validation metrics used when none are configured."""
        from da_toolkit.metrics import DepthMetrics

        alignment = "none" if self.output_kind == "metric" else "lstsq-disparity"
        return DepthMetrics(alignment=alignment)

    def forward(self, images: Tensor, return_features: bool = False) -> Any:
        """``images (B,3,H,W)`` in ``[0,1]`` -> ``(B,H,W)`` disparity or metres (+ features)."""
        from da_toolkit.models.preprocess import normalize

        return self.model(normalize(images), return_features=return_features)

    @property
    def input_multiple(self) -> int:
        """Sides of network inputs are multiples of this (the model's patch size or largest stride)."""
        from da_toolkit.models.inference_core import input_multiple

        return int(input_multiple(self.model))

    def predict_full(self, images: Tensor) -> Tensor:
        """Prediction at the input size for images of any size: ``(B,3,H,W)`` in ``[0,1]`` ->
        ``(B,H,W)`` in the model's units, no gradients.

        :func:`da_toolkit.models.inference_core.predict_tensor` at native size: the input is
        resized (bilinear) to the nearest multiples of :attr:`input_multiple` and the output
        resized back with the model's upsampling rule.
        """
        from da_toolkit.models.inference_core import predict_tensor

        with torch.no_grad():
            return predict_tensor(self.model, images, input_size=None, max_pixels=None)

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """Total loss, named terms for logging, and a ``(B,H,W)`` prediction to visualise (or None)."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One optimisation step: the task's loss terms, logged; returns the total loss.

        No host sync here: whether the loss and its terms are finite is decided together with the
        gradients in :meth:`on_before_optimizer_step` (one sync per optimiser step). The terms are
        logged (as tensors, on the progress bar too) on the steps whose values reach the logger
        (see :meth:`should_log_terms`); ``train/loss`` is logged every step.
        """
        loss, terms, pred = self.compute_loss(batch)
        detached = {name: value.detach() for name, value in terms.items()}
        self._pending_checks.append((loss.detach(), detached))
        bs = self._batch_size(batch)
        if self.should_log_terms():
            for name, value in detached.items():  # on the progress bar too: visible with `logger: false`
                self.log(f"train/{self.term_log_name(name, terms)}", value, prog_bar=True,
                         batch_size=bs, sync_dist=False)
        self.log("train/loss", loss.detach(), prog_bar=True, batch_size=bs)
        self._maybe_log_images(batch, pred)
        return loss

    @property
    def _pending_checks(self) -> list[tuple[Tensor, dict[str, Tensor]]]:
        """Detached (loss, terms) of the training steps since the last optimiser step."""
        return self.__dict__.setdefault("_pending_check_list", [])

    def should_log_terms(self) -> bool:
        """Whether this training step logs its loss terms: the first step, every step whose values
        Lightning's logger writes (every ``Trainer(log_every_n_steps)`` steps, the last step), every
        step of ``fast_dev_run`` or with ``log_every_n_steps=0``; else no (each ``self.log`` costs
        about 0.2-0.5 ms of Lightning bookkeeping, and values logged on the other steps are
        overwritten before the logger sees them)."""
        trainer = self._trainer
        if trainer is None or self.global_step == 0:
            return True
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None or not trainer.log_every_n_steps or trainer.fast_dev_run:
            return True
        try:
            return bool(connector.should_update_logs)
        except Exception:  # noqa: BLE001 - a Lightning internal changed: log every step as before
            return True

    #: loss term of :meth:`compute_loss` -> the task attribute holding the loss module that
    #: computed it; such a term is logged under that module's own name (``train/affine_invariant``
    #: for ``labeled_loss: affine_invariant``), the other terms under their role
    #: (``train/labeled``, ``train/unlabeled``, ``train/feature``, ``train/seg``)
    TERM_LOSSES: dict[str, str] = {"ssi": "labeled_loss", "gm": "gradient_loss", "silog": "loss"}

    def term_log_name(self, term: str, terms: dict[str, Tensor] | None = None) -> str:
        """The name a loss term is logged under: the registered component name of the loss that
        computed it (else its class name), or ``term`` itself (a role term, or a name that would
        clash with another term of ``terms``)."""
        cache: dict[str, str] = self.__dict__.setdefault("_term_log_names", {})
        if term not in cache:
            attr = self.TERM_LOSSES.get(term)
            module = getattr(self, attr, None) if attr else None
            cache[term] = term if module is None else _component_name(module)
        name = cache[term]
        if name != term and (name == "loss" or (terms is not None and name in terms)):
            return term
        return name

    @staticmethod
    def _batch_size(batch: dict[str, Any]) -> int:
        for part in ("labeled", "unlabeled"):
            if part in batch and "image" in batch[part]:
                return int(batch[part]["image"].shape[0])
        return int(batch["image"].shape[0]) if "image" in batch else 1

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the step on every rank if any rank saw a non-finite loss, loss term or gradient.

        One fused check and one host sync per optimiser step: the 2-norms of every gradient and of
        the step's loss and terms (``torch._foreach_norm``, fp32) must be finite. Only when one is
        not (NaN/inf, or a norm that overflowed on huge finite values) are the values checked one
        by one, so the verdict is exactly ``isfinite`` of every value.
        """
        pending = list(self._pending_checks)
        self._pending_checks.clear()
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        values = [v for loss, terms in pending for v in (loss, *terms.values())]
        bad = False
        if grads or values:
            norms = torch._foreach_norm([t.detach() for t in (*values, *grads)], dtype=torch.float32)
            if not bool(torch.isfinite(torch.stack(norms)).all()):
                bad = self._report_nonfinite(pending, optimizer)
        bad = bool(self.trainer.strategy.reduce_boolean_decision(bad, all=False))
        if bad:
            self.skipped_steps += 1
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # optimisers leave parameters without gradients untouched

    def on_train_start(self) -> None:
        """Forget checks left by training steps run outside a fit (none are pending at the start)."""
        self._pending_checks.clear()

    def _report_nonfinite(self, pending: list[tuple[Tensor, dict[str, Tensor]]],
                          optimizer: torch.optim.Optimizer) -> bool:
        """The exact check after the fused one failed: warn (``skip``) or raise (``raise``) naming the
        non-finite loss and its terms, or the first parameter with a non-finite gradient; returns
        whether the step must be skipped (False when the fused norms only overflowed)."""
        for loss, terms in pending:
            if not all(bool(torch.isfinite(v).all()) for v in (loss, *terms.values())):
                msg = f"non-finite training loss {loss.item()} at step {self.global_step} (terms: " + ", ".join(
                    f"{k}={float(v):.4g}" for k, v in terms.items()
                ) + ")"
                self._nonfinite(msg)
                return True
        names = {id(p): n for n, p in self.named_parameters()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    self._nonfinite(f"non-finite gradients at step {self.global_step} "
                                    f"(first: {names.get(id(p), 'an optimiser parameter')})")
                    return True
        return False

    def _nonfinite(self, msg: str) -> None:
        """Raise :class:`NonFiniteLossError` (``nonfinite="raise"``) or warn that the step is skipped."""
        if self.nonfinite == "raise":
            raise NonFiniteLossError(msg)
        warnings.warn(msg + "; skipping the optimiser step", RuntimeWarning, stacklevel=3)

    def configure_callbacks(self) -> list[pl.Callback]:
        """:class:`~da_toolkit.tasks.health.TrainingHealthCheck`: a loud warning when the first
        training steps show a dead model (constant predictions or zero gradients);
        :class:`~da_toolkit.tasks.eval_mode.FrozenEvalModeNote`: no eval-mode warning for frozen
        sub-models."""
        from da_toolkit.tasks.eval_mode import FrozenEvalModeNote
        from da_toolkit.tasks.health import TrainingHealthCheck

        configured = getattr(self._trainer, "callbacks", None) or []
        # FrozenEvalModeNote: Lightning's "Found N module(s) in eval mode" warning is expected for
        # frozen sub-models (alignment encoder, online teacher); silenced for exactly those
        return [cls() for cls in (TrainingHealthCheck, FrozenEvalModeNote)
                if not any(isinstance(cb, cls) for cb in configured)]  # unless the user configured one

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the skipped-step count and the model description (the file rebuilds its model alone)."""
        from da_toolkit.models.description import CHECKPOINT_KEY, describe_model

        checkpoint["skipped_steps"] = self.skipped_steps
        checkpoint[CHECKPOINT_KEY] = describe_model(self.model)  # the file rebuilds its model alone

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the count of skipped (non-finite) steps."""
        self.skipped_steps = int(checkpoint.get("skipped_steps", 0))

    def _maybe_log_images(self, batch: dict[str, Any], pred: Tensor | None) -> None:
        n = self.log_images_every_n_steps
        if pred is None or n <= 0 or self.global_step % n != 0 or self.trainer.global_rank != 0:
            return
        experiment = getattr(self.logger, "experiment", None) if self.logger is not None else None
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        labeled = batch.get("labeled", batch)
        invert = self.output_kind == "metric"
        for i in range(min(self.num_log_images, pred.shape[0])):
            target = labeled["depth"][i] if "depth" in labeled else None
            if target is not None and not invert and labeled.get("depth_kind", ["metric"])[i] == "metric":
                target = torch.where(target > 0, 1.0 / target.clamp_min(1e-6), torch.zeros_like(target))
            panel = prediction_panel(labeled["image"][i], pred[i].float(), target)
            experiment.add_image(f"train/prediction_{i}", panel, self.global_step)

    # ----------------------------------------------------------------------------- evaluation
    def _eval_step(self, batch: dict[str, Any], metrics: nn.Module | None, stage: str) -> None:
        labeled = batch.get("labeled", batch)
        pred = self.predict_full(labeled["image"])
        if metrics is None:
            return
        self.update_metrics(metrics, pred, labeled)

    def update_metrics(self, metrics: nn.Module, pred: Tensor, labeled: dict[str, Any]) -> None:
        """Feed one batch to a ``DepthMetrics``: ``pred (B,H,W)`` in the model's units."""
        metrics.update(pred.float(), labeled["depth"].float(), labeled["valid"])

    def _log_metrics(self, metrics: nn.Module | None, stage: str) -> None:
        if metrics is None:
            return
        values = metrics.compute()
        for name, value in values.items():
            v = torch.as_tensor(value, dtype=torch.float32)
            if v.numel() == 1 and math.isfinite(float(v)):
                self.log(f"{stage}/{name}", v, sync_dist=False)
        metrics.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update the validation metrics with this batch's predictions."""
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        """Log and reset the validation metrics."""
        self._log_metrics(self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Update the test metrics with this batch's predictions."""
        self._eval_step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        """Log and reset the test metrics."""
        self._log_metrics(self.test_metrics, "test")

    # ----------------------------------------------------------------------------- optimiser
    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at the encoder learning rate."""
        return list(self.model.encoder.parameters())

    def configure_optimizers(self) -> dict:
        """The optimiser and schedule of ``optim`` (encoder and decoder learning rates)."""
        enc_ids = {id(p) for p in self.encoder_parameters()}
        others = [p for p in self.parameters() if id(p) not in enc_ids]
        groups = param_groups(self.encoder_parameters(), others, self.optim)
        total = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 0
        if total <= 0 or total >= 2**62:
            total = 0
        return build_optimizer(groups, self.optim, total)
