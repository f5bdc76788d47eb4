"""The Lightning prediction writer of pseudo-label shards: a predict run, then a resumed one."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from da_toolkit.data.shards.prediction_writer import (
    PseudoLabelShardCallback,
    shard_store_done_ids,
)
from da_toolkit.data.shards.pseudo import PseudoLabelShards


class _Teacher(L.LightningModule):
    """Stand-in teacher: disparity = mean of the image + 0.1; skips ids in ``done``."""

    teacher_hash = "sha256:fake"
    settings_base = {"input_size": 14}  # noqa: RUF012 - read-only, as on the real task

    def __init__(self, done=frozenset()):
        super().__init__()
        self.done = set(done)
        self.w = torch.nn.Parameter(torch.zeros(1))

    def predict_step(self, batch, batch_idx):
        return [{"id": s["meta"]["id"], "image_ref": s["meta"]["image_ref"],
                 "disparity": s["image"].astype(np.float32).mean(axis=2) / 255 + 0.1, "image": s["image"]}
                for s in batch if s["meta"]["id"] not in self.done]


def _predict(src, root, done=frozenset()):
    cb = PseudoLabelShardCallback(str(root), maxcount=3)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[cb])
    trainer.predict(_Teacher(done), DataLoader(src, batch_size=2, collate_fn=list), return_predictions=False)
    return cb.written


def test_predict_writes_shards_and_a_rerun_labels_only_what_is_missing(tmp_path, make_source):
    src = make_source(7, labeled=False)
    assert shard_store_done_ids(str(tmp_path / "pl")) == set()
    assert _predict(src, tmp_path / "pl") == 7
    done = shard_store_done_ids(str(tmp_path / "pl"))
    assert done == {f"seed0/{i:08d}" for i in range(7)}
    assert _predict(src, tmp_path / "pl", done) == 0  # resumed: nothing relabeled
    ds = PseudoLabelShards(str(tmp_path / "pl"), shuffle=False)
    assert ds.settings == {"input_size": 14} and ds.teacher_hash == "sha256:fake"
    got = {s["meta"]["id"]: s for s in ds}
    assert len(got) == 7
    ref = src[4]["image"].astype(np.float32).mean(axis=2) / 255 + 0.1
    assert np.abs(got["seed0/00000004"]["depth"] - ref).max() <= ref.max() * 2.0**-11
