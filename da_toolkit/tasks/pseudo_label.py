"""Offline pseudo-labelling through Lightning's predict loop (DDP-ready, resumable).

* :class:`UnlabeledImages` - a LightningDataModule over unlabeled data sources; each item is
  preprocessed like the official inference (keep aspect, shorter side >= ``input_size``, sides
  multiples of the teacher's input multiple, bicubic) in the loader workers; items already in
  the store are skipped.
* :class:`PseudoLabelTask` - a frozen teacher; ``predict_step`` returns per item the relative
  disparity at the original image size.
* :class:`PseudoLabelStoreWriter` - a prediction-writer callback; rank ``r`` writes shard
  ``rank<r>`` of the store (:class:`da_toolkit.data.pseudo_store.PseudoLabelWriter`), so ranks
  never share files. Lightning's predict sampler does not repeat items across ranks, so each item
  is labeled exactly once.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import nn
from torch.utils.data import DataLoader, Dataset

from da_toolkit.models.depth_model import DepthModel
from da_toolkit.tasks.model_spec import freeze


def store_done_ids(root: str | Path) -> set[str]:
    """Ids of every finished item in every shard of a store (empty if the store is new)."""
    from da_toolkit.data.pseudo_store import SHARD_HEADER, read_manifest

    root = Path(root)
    if not root.is_dir():
        return set()
    done: set[str] = set()
    for shard in sorted(p for p in root.iterdir() if (p / SHARD_HEADER).exists()):
        for entry in read_manifest(shard):
            if (shard / entry["file"]).is_file():
                done.add(entry["id"])
    return done


def model_hash(model: nn.Module) -> str:
    """Identity of a teacher: ``"sha256:<hex>"`` of its state dict (names, dtypes, shapes, values).

    The same weights give the same identity whichever file format they were read from.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"sha256:{digest.hexdigest()}"


class _PreparedItems(Dataset):
    """Items of one source as ``{"image": (3,h',w') normalised, "size", "id", "image_ref", "skip"}``."""

    def __init__(self, source: Dataset, input_size: int, multiple: int, done: set[str], strict: bool = False) -> None:
        self.source = source
        self.input_size = input_size
        self.multiple = multiple
        self.done = done
        self.strict = strict

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from da_toolkit.data.errors import SampleReadError
        from da_toolkit.models.preprocess import prepare_image

        where = f"{type(self.source).__name__}[{index}]"
        try:
            sample = self.source[index]
        except SampleReadError as exc:  # unreadable file: reported, skipped (strict: raised)
            if self.strict:
                raise
            return {"id": where, "skip": True, "image": None, "error": str(exc)}
        meta = sample.get("meta", {})
        if "id" not in meta or "image_ref" not in meta:
            raise ValueError(f"{where}: sample meta needs 'id' and 'image_ref' to be pseudo-labeled")
        item = {"id": str(meta["id"]), "image_ref": meta["image_ref"], "size": tuple(sample["image"].shape[:2])}
        if item["id"] in self.done:
            return {**item, "skip": True, "image": None}
        try:
            image = prepare_image(sample["image"], self.input_size, multiple=self.multiple)[0]
        except ValueError as exc:  # e.g. refused by the size guard (absurd aspect ratio)
            if self.strict:
                raise ValueError(f"{where} ({item['id']}): {exc}") from None
            return {**item, "skip": True, "image": None, "error": f"{item['id']}: {exc}"}
        return {**item, "skip": False, "image": image}


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


class UnlabeledImages(pl.LightningDataModule):
    """Predict-only data module over unlabeled sources for pseudo-labelling.

    Args:
        sources: data sources (``image`` + ``meta`` with ``id`` and ``image_ref``).
        store: the pseudo-label store; items already in it are skipped (resume).
        input_size: lower bound of the shorter side fed to the teacher (official: 518).
        batch_size: items per predict step (same-size items are batched together).
        num_workers: loader worker processes.
        strict: stop at the first unreadable or refused image (naming it) instead of reporting it
            and labelling the rest.
    """

    def __init__(
        self,
        sources: Sequence[Dataset],
        store: str | None = None,
        input_size: int = 518,
        batch_size: int = 1,
        num_workers: int = 0,
        strict: bool = False,
    ) -> None:
        super().__init__()
        if not sources:
            raise ValueError("data.sources: give at least one unlabeled data source")
        self.sources = list(sources)
        self.store = store
        self.input_size = int(input_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.strict = bool(strict)
        self.dataset: Dataset | None = None

    def setup(self, stage: str) -> None:
        from torch.utils.data import ConcatDataset

        done = store_done_ids(self.store) if self.store else set()
        multiple = self.input_multiple()
        self.dataset = ConcatDataset([_PreparedItems(s, self.input_size, multiple, done, self.strict)
                                      for s in self.sources])

    def input_multiple(self) -> int:
        """The teacher's input multiple (network-input sides are multiples of it)."""
        from da_toolkit.models.inference_core import input_multiple

        task = self.trainer.lightning_module if self._trainer_attached() else None
        model = getattr(task, "model", None)
        if model is None:
            raise RuntimeError("UnlabeledImages: set up outside a Trainer; the teacher's input multiple is unknown")
        return int(input_multiple(model))

    def _trainer_attached(self) -> bool:
        return getattr(self, "trainer", None) is not None and self.trainer.lightning_module is not None

    def predict_dataloader(self) -> DataLoader:
        assert self.dataset is not None
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          collate_fn=_collate)


class PseudoLabelTask(pl.LightningModule):
    """A frozen teacher producing relative disparity at the original image size.

    Args:
        teacher: the trained teacher: a model description (``{preset: NAME, weights: FILE}``,
            ``class_path: DepthModel`` + ``init_args``) or a weights file that records its model
            (a teacher ``.ckpt``, our safetensors). The sha256 of its weights is recorded in
            every shard of the store.
        allow_random_weights: label with a teacher whose weights were never loaded (tests,
            smoke runs). Off by default: such a teacher is refused, its labels would be noise.

    A prediction that is constant over the image or not finite stops the job before it is written
    (:func:`da_toolkit.tasks.health.check_pseudo_labels`, naming the teacher file and the image).
    """

    def __init__(self, teacher: DepthModel, allow_random_weights: bool = False) -> None:
        super().__init__()
        if not getattr(teacher, "weights_loaded", True):
            if not allow_random_weights:
                raise ValueError(
                    "model.teacher: no weights were loaded (a randomly initialised teacher labels noise); set "
                    "model.teacher.init_args.weights (or give a teacher .ckpt), or model.allow_random_weights: true"
                )
            warnings.warn("pseudo-labelling with an untrained (randomly initialised) teacher", UserWarning,
                          stacklevel=2)
        self.model = freeze(teacher)
        #: the teacher's weights file (named when its labels are refused), if it was built from one
        self.teacher_file: str | None = (getattr(teacher, "init_args", None) or {}).get("weights")
        self.teacher_hash = model_hash(self.model)
        from da_toolkit.models.description import describe_model

        self.settings_base = {"model": describe_model(self.model)}
        self.failures: list[str] = []  # unreadable / refused items of this run (not written)

    def on_predict_end(self) -> None:
        if self.failures:
            lines = "\n".join(f"  {f}" for f in self.failures)
            print(f"pseudo-label: {len(self.failures)} item(s) could not be labeled (re-run to retry):\n{lines}")

    def predict_step(self, batch: list[dict[str, Any]], batch_idx: int) -> list[dict[str, Any]]:
        """Per item: ``{"id", "image_ref", "disparity": float32 (H,W) numpy}`` (skipped items left out)."""
        from da_toolkit.models.inference_core import align_corners_of, run_prepared
        from da_toolkit.tasks.health import check_pseudo_labels

        for item in batch:
            if item.get("error"):
                self.failures.append(item["error"])
                warnings.warn(f"pseudo-label: skipped {item['error']}", UserWarning, stacklevel=2)
        todo = [item for item in batch if not item["skip"]]
        if not todo:
            return []
        dtype = next(self.model.parameters()).dtype
        preds = run_prepared(self.model, [it["image"] for it in todo], [it["size"] for it in todo],
                             align_corners_of(self.model), self.device, dtype)
        for it, p in zip(todo, preds, strict=True):  # a dead or broken teacher never writes a store
            scale = float(p.detach().abs().max()) if p.numel() else 0.0
            # resampling a constant map is constant up to float rounding: tolerate 1e-5 of its scale
            check_pseudo_labels(p[None].float(), self.teacher_file, [it["id"]], atol=1e-5 * scale)
        return [{"id": it["id"], "image_ref": it["image_ref"], "disparity": p.float().cpu().numpy()}
                for it, p in zip(todo, preds, strict=True)]


class PseudoLabelStoreWriter(BasePredictionWriter):
    """Writes predictions of :class:`PseudoLabelTask` to shard ``rank<global_rank>`` of a store.

    Args:
        store: the store folder.
        dtype: ``float16`` (default) or ``float32`` ``.npy`` files.
        settings: extra settings recorded in every shard (the run's input size is added).
    """

    def __init__(self, store: str, dtype: Literal["float16", "float32"] = "float16",
                 settings: dict[str, Any] | None = None) -> None:
        super().__init__(write_interval="batch")
        self.store = store
        self.dtype = dtype
        self.settings = dict(settings or {})
        self._writer: Any = None
        self.written = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from da_toolkit.data.pseudo_store import PseudoLabelWriter

        if stage != "predict" or self._writer is not None:
            return
        settings = {**getattr(pl_module, "settings_base", {}), **self.settings}
        self._writer = PseudoLabelWriter(
            self.store, f"rank{trainer.global_rank:03d}", str(getattr(pl_module, "teacher_hash", "unknown")),
            settings, dtype=self.dtype,
        )

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: Any, batch_idx: int,
                           dataloader_idx: int) -> None:
        done = self._writer.done_ids()
        for item in prediction:
            if item["id"] in done:
                continue
            self._writer.write(item["id"], item["image_ref"], np.asarray(item["disparity"], dtype=np.float32))
            self.written += 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
