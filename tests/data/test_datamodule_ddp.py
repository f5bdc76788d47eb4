"""DDP: both training streams and the validation loader are split across ranks (slow: spawns 2 processes)."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from da_toolkit.data.datamodule import DepthDataModule
from da_toolkit.data.sources import SyntheticScenes


class _IdRecorder(L.LightningModule):
    def __init__(self, out_dir: str) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.ids: dict[str, list[str]] = {"labeled": [], "unlabeled": [], "val": []}

    def training_step(self, batch, idx):
        for stream in ("labeled", "unlabeled"):
            self.ids[stream] += [m["id"] for m in batch[stream]["meta"]]
        return (self.w - batch["labeled"]["depth"].mean()) ** 2

    def validation_step(self, batch, idx):
        self.ids["val"] += [m["id"] for m in batch["meta"]]

    def on_fit_end(self):
        with open(f"{self.out_dir}/rank{self.global_rank}.json", "w") as f:
            json.dump(self.ids, f)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.slow
def test_ddp_ranks_see_disjoint_samples(tmp_path):
    dm = DepthDataModule(
        labeled=[SyntheticScenes(8, (16, 16), seed=0)],
        unlabeled=[SyntheticScenes(16, (16, 16), seed=1, labeled=False)],
        val=[SyntheticScenes(4, (16, 16), seed=2)],
        crop_size=14,
        batch_size=2,
    )
    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(_IdRecorder(str(tmp_path)), datamodule=dm)
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    # 16 unlabeled / 2 ranks / 4 per batch = 2 steps per rank; labeled cycles (8 / 2 ranks)
    assert len(r0["unlabeled"]) == len(r1["unlabeled"]) == 8
    assert not set(r0["unlabeled"]) & set(r1["unlabeled"])
    assert len(set(r0["unlabeled"]) | set(r1["unlabeled"])) == 16
    assert not set(r0["labeled"]) & set(r1["labeled"])
    assert sorted(r0["val"] + r1["val"]) == [f"seed2/{i:08d}" for i in range(4)]
