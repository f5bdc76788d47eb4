"""Batched Python inference: :class:`Predictor`."""

from __future__ import annotations

import copy
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from da_toolkit.inference.datasets import (
    ImageLike,
    ImageListDataset,
    bucket_sampler,
    collate_inference,
)
from da_toolkit.inference.items import PredictionItem
from da_toolkit.inference.runner import (
    PRECISIONS,
    ModelFn,
    check_precision,
    precision_context,
    run_batch,
)
from da_toolkit.models.inference_core import align_corners_of, input_multiple
from da_toolkit.models.licence import provenance


class Predictor:
    """Batched depth prediction with the official preprocessing (same as ``DepthModel.infer_image``).

    Args:
        model: a ``DepthModel`` (``(B,3,H,W)`` normalised -> ``(B,H,W)``) or, with
            ``backend="onnxruntime"``, an ``.onnx`` file written by ``da-toolkit export`` (a module
            is exported to a temporary file first).
        precision: ``"32"``, ``"bf16-mixed"``, ``"16-mixed"`` (autocast) or ``"bf16-true"``
            (bf16 weights and activations; torch backend only).
        compile: wrap the model with ``torch.compile`` (on CPU with inductor ``freezing``); the
            first batch of each new input size compiles (minutes on a small CPU).
        batch_size: images per forward; images are bucketed by preprocessed size.
        input_size: lower bound of the shorter network-input side (official rule; sides become
            multiples of the model's ``input_multiple``).
        device: torch device (default: CUDA if available, else CPU).
        backend: ``"torch"`` or ``"onnxruntime"``.
        num_workers: DataLoader workers decoding files (``None``: up to 2 when paths are given).
        channels_last: use the channels-last memory format (helps the convolutional head).
        progress: show a tqdm progress bar.
        speed_check: for any configuration other than plain fp32 eager (``precision``,
            ``compile``, ``channels_last``): on the first batch of each new input shape, time the
            configured path (after its compilation) against plain fp32 eager and keep the faster
            one for that shape, with a warning when the configuration lost. This guarantees no
            configuration is slower than fp32 eager on this machine at this moment; it costs one
            extra forward of each per new shape. ``False`` always uses the configuration.

    Outputs are relative disparity (bigger = nearer) or metres, per ``model.output_kind``.
    """

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        precision: str = "32",
        compile: bool = False,
        batch_size: int = 4,
        input_size: int = 518,
        device: str | torch.device | None = None,
        backend: str = "torch",
        num_workers: int | None = None,
        channels_last: bool = False,
        progress: bool = True,
        speed_check: bool = True,
    ) -> None:
        self.precision = check_precision(precision)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if input_size < 1:
            raise ValueError(f"input_size must be >= 1, got {input_size}")
        self.batch_size = batch_size
        self.input_size = input_size
        self.num_workers = num_workers
        self.progress = progress
        self.device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.input_dtype = PRECISIONS[self.precision][1]
        self.speed_check = speed_check
        if backend == "torch":
            if not isinstance(model, nn.Module):
                raise TypeError(f"backend 'torch' needs an nn.Module model, got {type(model).__name__}")
            self.output_kind = str(getattr(model, "output_kind", "disparity"))
            self.provenance = provenance(model)
            self.input_multiple = input_multiple(model)
            self.align_corners = align_corners_of(model)
            self._fn = self._torch_fn(model, compile, channels_last)
        elif backend == "onnxruntime":
            from da_toolkit.inference.export import OnnxDepthModel

            if self.precision != "32":
                raise ValueError("backend 'onnxruntime' runs the exported fp32 graph; use precision '32'")
            ort_model = OnnxDepthModel.from_model_or_path(model, device=self.device)
            self.output_kind = ort_model.output_kind
            self.provenance = ort_model.provenance
            self.input_multiple = ort_model.input_multiple
            self.align_corners = ort_model.upsample_align_corners
            self._fn = ort_model
        else:
            raise ValueError(f"unknown backend {backend!r}; expected 'torch' or 'onnxruntime'")

    def _torch_fn(self, model: nn.Module, compile: bool, channels_last: bool) -> ModelFn:
        plain_model = model.eval().to(device=self.device)
        if self.input_dtype != torch.float32:  # never cast the caller's module in place
            model = copy.deepcopy(plain_model)
        model = model.eval().to(device=self.device, dtype=self.input_dtype)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        fn: Any = model
        if compile:
            # static shapes: each input size gets its own specialised graph (an automatic dynamic
            # graph after a size change is a different, unmeasured kernel set); CPU: freeze weights
            # into the graph so inductor pre-packs them for oneDNN
            fn = torch.compile(model, dynamic=False, options={"freezing": True} if self.device.type == "cpu" else None)
        dtype = self.input_dtype

        def run(x: torch.Tensor) -> torch.Tensor:
            x = x.to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with precision_context(self.precision, self.device):
                return fn(x)

        def plain(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return plain_model(x.float())

        configured = self.precision != "32" or compile or channels_last
        if not (configured and self.speed_check):
            return run
        label = f"precision={self.precision!r}" + (", compile=True" if compile else "") + (
            ", channels_last=True" if channels_last else "")
        return FastestPath(run, plain, label, self.device)

    def predict_items(self, images: Sequence[ImageLike]) -> list[PredictionItem]:
        """Predict every image; unreadable ones give items with ``error`` set (in input order)."""
        from tqdm.auto import tqdm

        dataset = ImageListDataset(images, self.input_size, multiple=self.input_multiple)
        batches = bucket_sampler(dataset, self.batch_size)
        has_paths = any(not isinstance(im, np.ndarray) for im in images)
        workers = self.num_workers if self.num_workers is not None else (min(2, os.cpu_count() or 1) if has_paths else 0)
        if self.num_workers is None and len(images) <= 2 * self.batch_size:
            workers = 0  # starting worker processes costs more than decoding a few images
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_inference)
        items: list[PredictionItem | None] = [None] * len(dataset)
        bar = tqdm(total=len(dataset), desc="predict", unit="img", disable=not self.progress)
        for batch in loader:
            ok = [j for j, e in enumerate(batch["error"]) if e is None]
            depths = run_batch(
                self._fn,
                [batch["images"][j] for j in ok],
                [batch["meta"][j]["size"] for j in ok],
                self.device,
                torch.float32,  # the model function casts to its own precision
                self.align_corners,
            )
            for j, meta in enumerate(batch["meta"]):
                items[meta["index"]] = PredictionItem(None, meta, self.output_kind, error=batch["error"][j],
                                                      provenance=dict(self.provenance))
            for j, depth in zip(ok, depths):
                meta = batch["meta"][j]
                items[meta["index"]] = PredictionItem(depth, meta, self.output_kind, provenance=dict(self.provenance))
            bar.update(len(batch["meta"]))
        bar.close()
        return items  # type: ignore[return-value]

    def predict(self, images: Sequence[ImageLike]) -> list[np.ndarray]:
        """``(H,W,3)`` uint8 RGB arrays and/or image paths -> ``(H,W)`` float32 at original sizes.

        Raises:
            ValueError: naming every input that could not be read or preprocessed.
        """
        items = self.predict_items(images)
        bad = [f"{it.meta['source']}: {it.error}" for it in items if it.error is not None]
        if bad:
            raise ValueError("could not predict:\n  " + "\n  ".join(bad))
        return [it.depth for it in items]  # type: ignore[misc]


class FastestPath:
    """Per input shape, the faster of a configured model function and plain fp32 eager.

    The first batch of a new shape runs ``configured`` once untimed (compilation, oneDNN
    primitive creation), then ``configured`` and ``plain`` once each, timed (wall clock, device
    synchronised); the faster serves that shape from then on (:attr:`choices`). Both take
    ``(B,3,h,w)`` float32 normalised input and return ``(B,h,w)``.
    """

    def __init__(self, configured: ModelFn, plain: ModelFn, label: str, device: torch.device) -> None:
        self.configured = configured
        self.plain = plain
        self.label = label
        self.device = device
        #: input shape -> ("configured" | "plain", configured seconds, plain seconds)
        self.choices: dict[tuple[int, ...], tuple[str, float, float]] = {}

    def _timed(self, fn: ModelFn, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t = time.perf_counter()
        out = fn(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return out, time.perf_counter() - t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Forward ``x`` (B,3,H,W) through the fastest configured path for its shape -> (B,H,W)."""
        key = tuple(x.shape)
        choice = self.choices.get(key)
        if choice is not None:
            return self.configured(x) if choice[0] == "configured" else self.plain(x)
        self.configured(x)  # warm-up: compilation / kernel creation is not what is compared
        out, t_conf = self._timed(self.configured, x)
        ref, t_plain = self._timed(self.plain, x)
        if t_conf <= t_plain:
            self.choices[key] = ("configured", t_conf, t_plain)
            return out
        self.choices[key] = ("plain", t_conf, t_plain)
        warnings.warn(
            f"Predictor: {self.label} took {t_conf:.3g} s against {t_plain:.3g} s for plain fp32 eager on input "
            f"{key}; using fp32 eager for this size (speed_check=False keeps the configuration)",
            RuntimeWarning,
            stacklevel=2,
        )
        return ref

