"""The package's encoder, losses and RGB-D source in one da-toolkit student step (data module -> loss -> backward)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from da_toolkit.data.datamodule import DepthDataModule
from da_toolkit.data.sources.folders import ImageFolder
from da_toolkit.models import DepthModel
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.perturb import CutMix
from da_toolkit.tasks import StudentTask
from da_toolkit_dermoscopy import (
    CutMixScaleShiftL1Loss,
    LesionCNN,
    RGBDFolder,
    ScaleShiftL1Loss,
)


def small_model() -> DepthModel:
    return DepthModel(LesionCNN(widths=(8, 8, 16, 16)), DPTDecoder(features=8, out_channels=(8, 8, 8, 8)))


def write_frames(root: Path, n: int = 4, size: tuple[int, int] = (80, 96)) -> None:
    rng = np.random.default_rng(0)
    for sub in ("rgb", "depth", "unlabeled"):
        (root / sub).mkdir(parents=True)
    yy, xx = np.mgrid[: size[0], : size[1]]
    for i in range(n):
        rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        depth_mm = (300 + 5 * xx + 2 * yy + 10 * i).astype(np.uint16)  # a tilted plane, 0.3-0.9 m
        depth_mm[:4, :4] = 0  # no measurement
        Image.fromarray(rgb).save(root / "rgb" / f"f{i}.png")
        Image.fromarray(depth_mm).save(root / "depth" / f"f{i}.png")
        Image.fromarray(rgb[::-1]).save(root / "unlabeled" / f"u{i}.png")


class CountingLabeled(ScaleShiftL1Loss):
    calls = 0

    def forward(self, pred, target, mask=None):
        type(self).calls += 1
        return super().forward(pred, target, mask)


class CountingCutMix(CutMixScaleShiftL1Loss):
    calls = 0

    def forward(self, pred, target_a, target_b, mask, valid=None):
        type(self).calls += 1
        return super().forward(pred, target_a, target_b, mask, valid)


def test_student_step_on_plugin_components(tmp_path: Path) -> None:
    write_frames(tmp_path)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random online teacher is warned about; expected here
        task = StudentTask(
            model=small_model(),
            teacher=small_model(),
            labeled_loss=CountingLabeled(),
            unlabeled_loss=CountingCutMix(),
            cutmix=CutMix(p=1.0, seed=0),
        )
    CountingLabeled.calls = CountingCutMix.calls = 0  # the build-time contract check called each loss once
    data = DepthDataModule(
        labeled=[RGBDFolder(tmp_path, max_depth=2.0)],
        unlabeled=[ImageFolder(tmp_path / "unlabeled")],
        crop_size=64, batch_size=2, unlabeled_ratio=1,
    )  # fmt: skip
    data.setup("fit")
    loader = data.train_dataloader()
    batch, *_ = next(iter(loader))
    labeled = batch["labeled"]
    assert labeled["image"].shape == (2, 3, 64, 64) and labeled["depth"].shape == (2, 64, 64)
    assert labeled["valid"].dtype == torch.bool and bool(labeled["valid"].any())
    task.train()
    total, terms, _ = task.compute_loss(batch)
    assert CountingLabeled.calls == 1 and CountingCutMix.calls == 1
    assert {"unlabeled"} <= set(terms) and torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in task.model.encoder.parameters()]
    assert all(g is not None for g in grads) and any(float(g.abs().sum()) > 0 for g in grads)  # the plugin encoder learns
    assert all(p.grad is None for p in task.teacher.parameters())  # the frozen teacher does not
