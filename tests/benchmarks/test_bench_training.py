"""benchmarks/bench_training.py (issue 15.1): the empty-module row does exactly the bare step, and the
printed ratios are computed from the raw samples it measured (no timing is asserted)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench_loader import load_benchmark_module

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    return load_benchmark_module("bench_training")


def test_the_empty_module_computes_the_bare_loss_on_the_tasks_own_networks() -> None:
    bt = _bench()
    setting = dict(bt.SETTINGS["tiny"])
    task = bt.make_task(setting)
    (batch,), _ = bt.fetch_batches(bt.make_data(setting, setting["batch"]), 1)
    module = bt.BareModule(task)
    assert module.student is task.model
    assert not any(p is q for p in module.parameters() for q in task.frozen_encoder.parameters())  # not trained
    torch.testing.assert_close(module.training_step(batch, 0), bt.bare_loss(task.model, task.frozen_encoder, batch))
    trained = {id(p) for g in module.configure_optimizers().param_groups for p in g["params"]}
    assert trained == {id(p) for p in task.model.parameters() if p.requires_grad}


def test_trainer_kinds() -> None:
    bt = _bench()
    minimal = bt._trainer_kwargs("minimal", "/tmp")
    assert minimal["logger"] is False and not minimal["enable_progress_bar"] and minimal["callbacks"] == []
    recipe = bt._trainer_kwargs("recipe", "/tmp")
    assert recipe["enable_progress_bar"] and recipe["log_every_n_steps"] == 50
    assert {type(c).__name__ for c in recipe["callbacks"]} == {"ModelCheckpoint", "LearningRateMonitor"}


@pytest.mark.slow
def test_the_rows_are_differences_of_the_measured_medians(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_training.py"), "--settings", "tiny",
                           "--steps", "3", "--reps", "1", "--warmup", "1", "--threads", "1", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Lightning's fixed cost" in proc.stdout and "with the recipe trainer" in proc.stdout
    assert "Epoch" not in proc.stdout  # the progress bar of the recipe trainer is not printed
    (r,) = json.loads(out.read_text())["results"]
    assert r["warmup"] == 1
    for unit in ("wall", "cpu"):
        m, samples = r[unit], r["samples"][unit]
        for key in ("lightning", "bare", "recipe_trainer", "lightning_bare_module", "bare_in_recipe_trainer",
                    "bare_in_lightning_bare_module"):
            assert len(samples[key]) == 3
            assert m[key] == pytest.approx(statistics.median(samples[key]))
        # every fit against the bare steps interleaved with it
        assert m["lightning_fixed"] == pytest.approx(m["lightning_bare_module"] - m["bare_in_lightning_bare_module"])
        assert m["recipe_bookkeeping"] == pytest.approx(m["recipe_trainer"] - m["lightning"])
        assert m["recipe_overhead_ratio"] == pytest.approx(m["recipe_trainer"] / m["bare_in_recipe_trainer"] - 1.0)
