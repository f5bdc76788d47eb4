"""SemanticPretrainTask: a tiny encoder learns segmentation and is saved as an encoder-only file."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from da_toolkit.data.datamodule import DepthDataModule
from da_toolkit.data.sources.synthetic import SyntheticScenes
from da_toolkit.models.encoders.dinov2 import DINOv2Encoder
from da_toolkit.models.weights import load_encoder_weights, read_weights
from da_toolkit.tasks.optim import OptimConfig
from da_toolkit.tasks.pretrain import SemanticPretrainTask


def _encoder() -> DINOv2Encoder:
    return DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, img_size=56, layer_indices=[0, 0, 1, 1])


def _batch(n: int = 8) -> dict:
    from da_toolkit.data.collate import collate_samples
    from da_toolkit.data.transforms import to_tensors

    src = SyntheticScenes(length=n, size=(56, 56), seed=3)
    return collate_samples([to_tensors(src[i]) for i in range(n)])


def test_pretraining_lowers_the_segmentation_loss_and_writes_a_loadable_encoder(tmp_path):
    pl.seed_everything(0)
    task = SemanticPretrainTask(_encoder(), optim=OptimConfig(encoder_lr=2e-3, decoder_lr_mult=1.0, schedule="constant"),
                                encoder_out=str(tmp_path / "enc.safetensors"))
    fixed = _batch()
    with torch.no_grad():
        before = float(task._loss(fixed)[0])
    dm = DepthDataModule(labeled=[SyntheticScenes(length=64, size=(56, 70), seed=1)], crop_size=56, batch_size=8)
    trainer = pl.Trainer(max_steps=40, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(task, dm)
    with torch.no_grad():
        after = float(task._loss(fixed)[0])
    assert after < 0.8 * before, (before, after)

    path = tmp_path / "enc.safetensors"
    assert task.written_encoder == path and path.is_file()
    loaded = read_weights(path)
    assert loaded.backbone_only or all(k.startswith("encoder.") for k in loaded.state_dict)
    fresh = _encoder()
    load_encoder_weights(fresh, path)
    for (name, a), (_, b) in zip(task.encoder.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_batch_without_seg_is_a_clear_error():
    task = SemanticPretrainTask(_encoder())
    batch = _batch(2)
    del batch["seg"]
    with pytest.raises(KeyError, match="no `seg` labels"):
        task._loss(batch)


def test_out_of_range_classes_are_ignored():
    task = SemanticPretrainTask(_encoder(), num_classes=7)
    batch = _batch(2)
    all_ignored = dict(batch, seg=torch.full_like(batch["seg"], -1))
    loss = task._loss(all_ignored)[0]
    assert float(loss.detach()) == 0.0 and loss.requires_grad  # no labeled pixel: zero loss, no NaN
    only_valid = task._loss(batch)[0]
    assert torch.isfinite(only_valid)
