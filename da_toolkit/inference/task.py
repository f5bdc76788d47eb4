"""``DepthPredictionTask``: the LightningModule of ``da-toolkit predict``."""

from __future__ import annotations

import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from da_toolkit.inference.guards import require_trained_model
from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.runner import run_batch
from da_toolkit.inference.video import TemporalSmoother
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.inference_core import align_corners_of, input_multiple
from da_toolkit.models.licence import provenance


class DepthPredictionTask(pl.LightningModule):
    """Predict depth for :class:`~da_toolkit.inference.data.InferenceData` batches.

    Args:
        model: the network, a :class:`~da_toolkit.models.depth_model.DepthModel` (recipes:
            ``class_path: DepthModel`` + typed ``init_args``, whose ``weights`` is the local weights
            file: an official ``.pth``, a Hugging Face ``.safetensors`` file/folder or a da-toolkit
            checkpoint). The CLI also takes the short forms of
            :mod:`da_toolkit.cli.model_forms`: a preset name, ``{preset: NAME, weights: FILE}``, or
            a file that records its model (a task ``.ckpt``, our safetensors) alone:
            ``--model.model runs/teacher/final.ckpt``.
        allow_random_weights: predict with a model whose weights were never loaded (refused by
            default: random weights give plausible-looking blurry maps).
        max_failures: failed inputs + failed writes tolerated before the run's exit status is 1
            (default 0: any failure fails the run; ``null`` = never, the summary is still printed).
            Exit status of ``da-toolkit predict``: 0 all done (or failures within
            ``max_failures``), 1 more failures, 2 a usage error before any work (missing inputs,
            colliding output ids, a model with no weights loaded).
        compile: ``torch.compile`` the model.
        channels_last: channels-last memory format for the convolutional head.
        temporal_smoothing: EMA momentum (0..1, weight of the past) of per-frame shift/scale for
            video frames (:class:`~da_toolkit.inference.video.TemporalSmoother`); ``None`` = off.
        keep_predictions: keep every prediction in memory and return it from ``trainer.predict``
            (off by default: writers consume them batch by batch).

    ``predict_step`` returns a list of :class:`~da_toolkit.inference.items.PredictionItem`:
    ``(H,W)`` float32 at each input's original size, relative disparity or metres.
    Precision and devices come from the Trainer (``--trainer.precision bf16-mixed``).
    """

    def __init__(
        self,
        model: DepthModel,
        allow_random_weights: bool = False,
        max_failures: int | None = 0,
        compile: bool = False,
        channels_last: bool = False,
        temporal_smoothing: float | None = None,
        keep_predictions: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.model: expected a DepthModel, got {type(model).__name__}")
        if temporal_smoothing is not None and not 0.0 <= temporal_smoothing < 1.0:
            raise ValueError(f"model.temporal_smoothing must be in [0, 1) or null, got {temporal_smoothing}")
        if max_failures is not None and max_failures < 0:
            raise ValueError(f"model.max_failures must be >= 0 or null, got {max_failures}")
        self.model: nn.Module = model
        self.allow_random_weights = allow_random_weights
        self.model.eval()
        self.max_failures = max_failures
        #: 0 after a run within ``max_failures``, 1 otherwise (read by the command as its exit status)
        self.exit_status = 0
        self.output_kind = str(getattr(self.model, "output_kind", "disparity"))
        #: licence / origin of the weights, recorded in every output with metadata
        self.provenance = provenance(self.model)
        self.compile = compile
        self.channels_last = channels_last
        self.temporal_smoothing = temporal_smoothing
        self.keep_predictions = keep_predictions
        self._smoothers: dict[str, TemporalSmoother] = {}
        self._forward: Any = self.model
        self.failures: list[tuple[str, str]] = []

    @property
    def input_multiple(self) -> int:
        """Network-input sides are multiples of this (from the model)."""
        return input_multiple(self.model)

    @property
    def upsample_align_corners(self) -> bool:
        """The model's upsampling rule (V2: ``True``, V1: ``False``)."""
        return align_corners_of(self.model)

    def setup(self, stage: str) -> None:
        """Refuse a model with no weights loaded (unless allowed); memory format, compilation."""
        # checked here, before any input is read, so that the command reports it as one line
        require_trained_model(self.model, self.allow_random_weights, where="da-toolkit predict",
                              hint="--model.allow_random_weights true",
                              weights_hint="--model.model.init_args.weights FILE, or --model.model FILE for a "
                                           "file that records its model")
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.compile:
            self._forward = torch.compile(self.model)

    def on_predict_start(self) -> None:
        """Reset the run's smoothers and failures; predictions are not kept unless asked."""
        if not self.keep_predictions:
            self.trainer.predict_loop.return_predictions = False
        self._smoothers.clear()
        self.failures.clear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B,3,h,w)`` ImageNet-normalised -> ``(B,h,w)`` disparity or metres."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._forward(x)

    def _smooth(self, item: PredictionItem) -> None:
        vid = item.meta.get("video")
        if self.temporal_smoothing is None or vid is None or item.depth is None:
            return
        smoother = self._smoothers.setdefault(str(vid), TemporalSmoother(self.temporal_smoothing))
        item.depth = smoother(item.depth)

    def predict_step(self, batch: dict[str, list[Any]], batch_idx: int, dataloader_idx: int = 0) -> list[PredictionItem]:
        """One :class:`PredictionItem` per input of ``batch`` (failed inputs carry their error)."""
        ok = [j for j, err in enumerate(batch["error"]) if err is None]
        dtype = next(self.model.parameters()).dtype
        depths = run_batch(
            self,
            [batch["images"][j] for j in ok],
            [batch["meta"][j]["size"] for j in ok],
            self.device,
            dtype,
            self.upsample_align_corners,
        )
        items = []
        for j, meta in enumerate(batch["meta"]):
            err = batch["error"][j]
            if err is not None:
                self.failures.append((str(meta.get("source")), err))
                warnings.warn(f"da-toolkit predict: skipped {meta.get('source')}: {err}", stacklevel=2)
                items.append(PredictionItem(None, meta, self.output_kind, error=err,
                                            provenance=dict(self.provenance)))
        for j, depth in zip(ok, depths):
            item = PredictionItem(depth, batch["meta"][j], self.output_kind, image=batch["raw"][j],
                                  provenance=dict(self.provenance))
            self._smooth(item)
            items.append(item)
        return items

    def run_failures(self) -> list[tuple[str, str, str]]:
        """Every failure of the run: ``(kind, source, reason)`` with kind ``input`` or ``write``
        (from this task and from every writer callback with a ``failures`` list)."""
        out = [("input", src, err) for src, err in self.failures]
        trainer = self._trainer
        for cb in getattr(trainer, "callbacks", []) if trainer is not None else []:
            for src, err in getattr(cb, "failures", []):
                out.append(("write", src, f"{type(cb).__name__}: {err}"))
        return out

    def on_predict_end(self) -> None:
        """Set :attr:`exit_status` and print the failure summary, if anything failed."""
        failed = self.run_failures()
        self.exit_status = int(self.max_failures is not None and len(failed) > self.max_failures)
        if not failed:
            return
        inputs = sum(kind == "input" for kind, _, _ in failed)
        lines = "\n  ".join(f"{kind} {src}: {err}" for kind, src, err in failed)
        verdict = "exit status 1" if self.exit_status else f"tolerated (max_failures={self.max_failures})"
        print(f"da-toolkit predict: {len(failed)} failure(s) ({inputs} input(s), {len(failed) - inputs} "
              f"write(s)); {verdict}:\n  {lines}")
