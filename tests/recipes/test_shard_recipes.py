"""recipes/pseudo_label_shards.yaml then recipes/student_shards.yaml, as written, on tiny shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from da_toolkit.cli.lightning_cli import run_lightning_cli
from tests.recipes.conftest import RECIPES, synthetic, tiny_trainer, write


def test_pseudo_label_shards_then_student_shards_recipes_run(tmp_path: Path, tiny_weights: str) -> None:
    from da_toolkit.cli.pseudo_label import run as pseudo_label
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShards
    from da_toolkit.data.sources.synthetic import SyntheticScenes
    from da_toolkit.tasks.pseudo_label import model_hash

    # labeled RGB-D shards, made with the converter
    pack_source(SyntheticScenes(length=4, size=(42, 56), seed=0), str(tmp_path / "rgbd"), prefix="data",
                maxcount=2, progress=False)
    store = tmp_path / "pseudo"
    pl_override = {"store": str(store), "shards": {"maxcount": 4},
                   "trainer": {"accelerator": "cpu", "devices": 1, "precision": "32-true", "enable_progress_bar": False},
                   "model": {"teacher": tiny_weights},
                   "data": {"sources": [synthetic(8, seed=3, labeled=False)], "input_size": 28, "num_workers": 0}}
    result = pseudo_label(["--config", str(RECIPES / "pseudo_label_shards.yaml"),
                           "--config", write(tmp_path / "pl.yaml", pl_override)])
    assert result["written"] == 8 and result["exit_status"] == 0
    assert sorted(p.name for p in store.glob("*.tar")) == ["rank000-000000.tar", "rank000-000001.tar"]
    shards = PseudoLabelShards(str(store), shuffle=False)
    samples = list(shards)
    assert len({s["meta"]["id"] for s in samples}) == 8
    assert all(s["image"].shape == (42, 56, 3) and s["depth"].shape == (42, 56) for s in samples)  # image in the shard
    from da_toolkit.models import load_model

    assert shards.teacher_hash == model_hash(load_model(tiny_weights))

    trainer = tiny_trainer(tmp_path / "student")
    del trainer["precision"]  # the recipe's bf16-mixed, as written (CPU autocast)
    override = {"trainer": trainer,
                "model": {"init_args": {"model": {"preset": "tiny", "encoder_weights": tiny_weights}}},
                "data": {"init_args": {"labeled": [{"class_path": "sharded_rgbd",
                                                    "init_args": {"index": str(tmp_path / "rgbd" / "data.index.json")}}],
                                       "pseudo_labeled": [{"class_path": "pseudo_label_shards",
                                                           "init_args": {"root": str(store),
                                                                         "teacher_hash": shards.teacher_hash}}],
                                       "val": [synthetic(1, seed=9)], "crop_size": 28, "batch_size": 1,
                                       "num_workers": 0}}}
    cli = run_lightning_cli(["fit", "--config", str(RECIPES / "student_shards.yaml"),
                             "--config", write(tmp_path / "s.yaml", override)])
    assert cli.trainer.global_step == 2 and cli.trainer.precision == "bf16-mixed"
    assert type(cli.datamodule).__name__ == "ShardStudentDataModule"
    loaders = cli.trainer.fit_loop._combined_loader.flattened
    assert [loader.batch_size for loader in loaders] == [1, 2]  # labeled : pseudo-labeled = 1 : 2
    assert {"train/unlabeled", "train/feature", "train/labeled"} <= set(cli.trainer.callback_metrics)
    assert np.isfinite(float(cli.trainer.callback_metrics["train/loss"]))
