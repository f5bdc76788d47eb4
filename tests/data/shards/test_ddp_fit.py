"""A 2-process DDP fit (gloo, CPU) over shard streams: each rank trains on its own samples, once each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import lightning as L
    import torch
    from da_toolkit.data.shards import ShardedRGBD
    from da_toolkit.data.shards.pseudo import PseudoLabelShards
    from da_toolkit.data.shards.datamodule import ShardStudentDataModule

    labeled, pseudo, out = sys.argv[1:4]

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
        def training_step(self, batch, i):
            with open(f"{out}.rank{self.global_rank}", "a") as f:
                f.write(json.dumps([self.current_epoch, [m["id"] for m in batch["labeled"]["meta"]],
                                    [m["id"] for m in batch["unlabeled"]["meta"]]]) + "\\n")
            return (self.w * batch["labeled"]["image"].mean()) ** 2
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    if __name__ == "__main__":
        dm = ShardStudentDataModule(labeled=[ShardedRGBD(index=labeled, seed=5)],
                                    pseudo_labeled=[PseudoLabelShards(pseudo, seed=6)],
                                    crop_size=8, batch_size=1, unlabeled_ratio=2, num_workers=1)
        trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=2, strategy="ddp", logger=False,
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                            default_root_dir=os.path.dirname(out))
        trainer.fit(Recorder(), datamodule=dm)
''')


@pytest.mark.slow
def test_ddp_fit_splits_shard_streams_exactly_once_per_epoch(tmp_path, make_source):
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter

    pack_source(make_source(8), str(tmp_path / "lab"), prefix="l", maxcount=2, progress=False)
    src = make_source(16, labeled=False, seed=9)
    with PseudoLabelShardWriter(str(tmp_path / "pl"), "rank000", "sha256:t", {}, maxcount=4) as w:
        for i in range(16):
            s = src[i]
            w.write(s["meta"]["id"], s["meta"]["image_ref"], np.ones((12, 16), np.float32), image=s["image"])
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    out = tmp_path / "ids"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "lab" / "l.index.json"), str(tmp_path / "pl"),
                           str(out)], env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [[json.loads(line) for line in Path(f"{out}.rank{r}").read_text().splitlines()] for r in (0, 1)]
    assert [len(r) for r in ranks] == [8, 8]  # 2 epochs x 4 steps on each rank (8 labeled / 2 ranks / batch 1)
    for epoch in (0, 1):
        lab = [i for r in ranks for step in r if step[0] == epoch for i in step[1]]
        pl = [i for r in ranks for step in r if step[0] == epoch for i in step[2]]
        assert sorted(lab) == [f"seed0/{i:08d}" for i in range(8)]  # every labeled sample once per epoch
        assert sorted(pl) == [f"seed9/{i:08d}" for i in range(16)]  # every pseudo-label once per epoch
