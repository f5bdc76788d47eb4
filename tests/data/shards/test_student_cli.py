"""`da-toolkit fit` of the StudentTask on labeled + pseudo-label shards (1:2), resumed from last.ckpt."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

CONFIG = """
seed_everything: 0
trainer: {{accelerator: cpu, max_steps: {steps}, logger: false, enable_progress_bar: false,
          enable_model_summary: false, default_root_dir: {run}}}
model:
  class_path: StudentTask
  init_args: {{model: tiny}}
data:
  class_path: da_toolkit.data.shards.datamodule.ShardStudentDataModule
  init_args:
    labeled:
      - class_path: sharded_rgbd
        init_args: {{index: {lab}}}
    pseudo_labeled:
      - class_path: pseudo_label_shards
        init_args: {{root: {pl}, teacher_hash: "sha256:t"}}
    val:
      - class_path: synthetic
        init_args: {{length: 1, size: [28, 28]}}
    crop_size: 28
    batch_size: 2
    unlabeled_ratio: 2
"""


@pytest.mark.slow
def test_student_fit_on_shards_through_the_cli_and_resume(tmp_path, make_source):
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter

    pack_source(make_source(8), str(tmp_path / "lab"), prefix="l", maxcount=4, progress=False)
    src = make_source(16, labeled=False, seed=3)
    with PseudoLabelShardWriter(str(tmp_path / "pl"), "rank000", "sha256:t", {}, maxcount=8) as w:
        for i in range(16):
            s = src[i]
            w.write(s["meta"]["id"], s["meta"]["image_ref"], np.random.default_rng(i).random((12, 16)) + 0.1,
                    image=s["image"])
    run = tmp_path / "run"

    def fit(steps, *extra):
        cfg = tmp_path / f"cfg{steps}.yaml"
        cfg.write_text(CONFIG.format(steps=steps, run=run, lab=tmp_path / "lab" / "l.index.json", pl=tmp_path / "pl"))
        proc = subprocess.run([sys.executable, "-m", "da_toolkit.cli", "fit", "--config", str(cfg), *extra],
                              capture_output=True, text=True, timeout=400, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    fit(2)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    labeled, pseudo = ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert (labeled["batch_size"], labeled["batches"], pseudo["batch_size"], pseudo["batches"]) == (2, 2, 4, 2)
    assert labeled["consumed"] == {0: 4} and pseudo["consumed"] == {0: 8}  # 1:2, mid-epoch
    fit(4, "--ckpt_path", str(run / "checkpoints" / "last.ckpt"))
    again = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert again["global_step"] == 4
    assert again["loops"]["fit_loop"]["state_dict"]["combined_loader"][1]["epoch"] == 0  # epoch 0 finished, no restart
