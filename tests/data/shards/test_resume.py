"""Mid-epoch resume of shard streams: the loader state, and a Lightning fit killed and resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from da_toolkit.data.shards import ShardedRGBD, ShardLoader


def _ids(batch):
    return [s["meta"]["id"] for s in batch]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_state_resumes_mid_epoch_without_repeats_or_gaps(rgbd_shards, workers):
    root, _ = rgbd_shards

    def make():
        return ShardLoader(ShardedRGBD(index=str(root / "syn.index.json"), seed=1, shuffle_buffer=4),
                           batch_size=2, num_workers=workers, collate_fn=_ids, lag=0)

    full = make()
    reference = [list(b) for _ in range(2) for b in full]  # two epochs uninterrupted
    first = make()
    it = iter(first)
    seen = [next(it) for _ in range(5)]
    state = first.state_dict()
    del it
    json.dumps(state)  # checkpoint-friendly
    resumed = make()
    resumed.load_state_dict(state)
    rest = list(resumed) + list(resumed)  # rest of epoch 0, then epoch 1
    assert seen + rest == reference


def test_resume_with_other_layout_is_refused(rgbd_shards):
    root, _ = rgbd_shards
    a = ShardLoader(ShardedRGBD(index=str(root / "syn.index.json")), batch_size=2, collate_fn=_ids, lag=0)
    it = iter(a)
    next(it)
    state = a.state_dict()
    b = ShardLoader(ShardedRGBD(index=str(root / "syn.index.json")), batch_size=3, collate_fn=_ids, lag=0)
    b.load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size=2"):
        next(iter(b))


SCRIPT = textwrap.dedent('''
    import json, os, signal, sys
    import lightning as L
    import torch
    from da_toolkit.data.shards import ShardedRGBD
    from da_toolkit.data.shards.pseudo import PseudoLabelShards
    from da_toolkit.data.shards.datamodule import ShardStudentDataModule

    labeled, pseudo, out, kill_at, ckpt = sys.argv[1:6]
    kill_at = int(kill_at)

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
        def training_step(self, batch, i):
            with open(out, "a") as f:
                f.write(json.dumps([self.current_epoch, [m["id"] for m in batch["labeled"]["meta"]],
                                    [m["id"] for m in batch["unlabeled"]["meta"]]]) + "\\n")
                f.flush(); os.fsync(f.fileno())
            return (self.w * batch["labeled"]["image"].mean()) ** 2
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Kill(L.Callback):
        def on_train_batch_start(self, trainer, *a):
            if trainer.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    dm = ShardStudentDataModule(labeled=[ShardedRGBD(index=labeled, seed=5, shuffle_buffer=3)],
                                pseudo_labeled=[PseudoLabelShards(pseudo, seed=6, shuffle_buffer=3)],
                                crop_size=8, batch_size=1, unlabeled_ratio=2, num_workers=2)
    ckpt_cb = L.pytorch.callbacks.ModelCheckpoint(dirpath=os.path.dirname(out) + "/ckpt", every_n_train_steps=1,
                                                  save_last=True, save_top_k=0)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=os.path.dirname(out),
                        callbacks=[Kill(), ckpt_cb])
    trainer.fit(Recorder(), datamodule=dm, ckpt_path=None if ckpt == "none" else ckpt)
''')


@pytest.mark.slow
def test_fit_killed_mid_epoch_resumes_the_data_stream_exactly(tmp_path, make_source):
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter

    pack_source(make_source(6), str(tmp_path / "lab"), prefix="l", maxcount=2, progress=False)
    src = make_source(12, labeled=False, seed=9)
    with PseudoLabelShardWriter(str(tmp_path / "pl"), "rank000", "sha256:t", {}, maxcount=4) as w:
        for i in range(12):
            s = src[i]
            w.write(s["meta"]["id"], s["meta"]["image_ref"], np.ones((12, 16), np.float32) * (i + 1), image=s["image"])
    script = tmp_path / "fit.py"
    script.write_text(SCRIPT)
    lab, pl = str(tmp_path / "lab" / "l.index.json"), str(tmp_path / "pl")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run(run_dir, kill_at, ckpt):
        run_dir.mkdir(exist_ok=True)
        out = run_dir / "ids.jsonl"
        proc = subprocess.run([sys.executable, str(script), lab, pl, str(out), str(kill_at), ckpt],
                              env=env, capture_output=True, text=True, timeout=300, check=False)
        return proc, out

    proc, ref_out = run(tmp_path / "ref", -1, "none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = [json.loads(line) for line in ref_out.read_text().splitlines()]
    assert len(reference) == 12  # 2 epochs x 6 steps
    for epoch in (0, 1):
        steps = [r for r in reference if r[0] == epoch]
        assert sorted(i for r in steps for i in r[1]) == [f"seed0/{i:08d}" for i in range(6)]
        assert sorted(i for r in steps for i in r[2]) == [f"seed9/{i:08d}" for i in range(12)]

    killed_dir = tmp_path / "killed"
    proc, out = run(killed_dir, 4, "none")  # SIGKILL before step 4 (mid epoch 0)
    assert proc.returncode == -9, proc.stderr[-3000:]
    proc, out = run(killed_dir, -1, str(killed_dir / "ckpt" / "last.ckpt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = [json.loads(line) for line in out.read_text().splitlines()]
    assert resumed == reference
