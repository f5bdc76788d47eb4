"""Metric fine-tuning (V2): Sigmoid * max_depth head trained with SiLog on metres."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from da_toolkit.tasks.base import DepthTask
from da_toolkit.tasks.targets import metric_targets


def _default_silog() -> nn.Module:
    from da_toolkit.losses.silog import SiLogLoss

    return SiLogLoss()


class MetricTask(DepthTask):
    """Fine-tune a metric-depth model (outputs metres).

    The model must have a metric head (the decoder's ``max_depth`` set, e.g. a
    ``depth-anything-v2-metric-*`` preset, or ``model: {preset: NAME, decoder: {max_depth: 20.0}}``);
    as in V2, only the encoder is initialised from a relative model (``model.init_args.
    encoder_weights``), the decoder starts fresh. Labeled samples must be
    of ``depth_kind`` ``metric``.

    Args:
        loss: ``(pred, target, mask) -> scalar`` in metres (default ``SiLogLoss()``, lambda 0.5).
        min_depth: targets at or below this depth (m) are ignored.
        **kwargs: model / optimiser / evaluation arguments of
            :class:`~da_toolkit.tasks.base.DepthTask` (V2: ``optim.schedule: poly``).
    """

    def __init__(self, loss: nn.Module | None = None, min_depth: float = 1e-3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.output_kind != "metric":
            raise ValueError(
                "MetricTask needs a metric model (Sigmoid * max_depth head): use a metric preset or set "
                "the decoder's max_depth (model.init_args.decoder.init_args.max_depth)"
            )
        self.check_loss_contract(loss, "labeled", "loss")
        self.loss = loss if loss is not None else _default_silog()
        self.min_depth = float(min_depth)

    def compute_loss(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """SiLog loss of the metric depth prediction on the labeled batch: (total, terms, prediction)."""
        if "labeled" not in batch:
            raise ValueError("MetricTask needs labeled batches with metric depth (batch['labeled'])")
        labeled = batch["labeled"]
        pred = self(labeled["image"])
        target, valid = metric_targets(labeled["depth"], labeled["valid"], labeled["depth_kind"], self.min_depth)
        value = self.loss(pred, target, valid)
        return value, {"silog": value}, pred
