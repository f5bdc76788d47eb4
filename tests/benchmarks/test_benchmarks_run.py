"""The throughput benchmarks run (tiny CPU settings) and report ratios computed from what they
measured: structure of the JSON they write, finite figures, ratios recomputed from the raw runs.
No timing is asserted (the machine's load decides those)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _finite_positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _check_pseudo_label(r: dict) -> None:
    assert len(r["pseudo_label_s"]) == r["reps"] and len(r["predictor_s"]) == r["reps"]
    pl = r["images"] / statistics.median(r["pseudo_label_s"])
    pr = r["images"] / statistics.median(r["predictor_s"])
    assert r["pseudo_label_img_s"] == pytest.approx(pl) and r["predictor_img_s"] == pytest.approx(pr)
    assert r["ratio"] == pytest.approx(pl / pr) and math.isfinite(r["ratio"])
    # the store holds what Predictor predicts for the same files (float16 storage)
    assert r["store_matches_predictor"] < 5e-3
    assert r["resume_written"] == 0  # a re-run over the finished store writes nothing
    assert all(_finite_positive(v) for v in r["decode_img_s"].values()) and _finite_positive(r["model_img_s"])


def test_gpu_check_tiny_runs_every_part_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = _run("gpu_check.py", "--tiny", "--out", str(out))
    res = json.loads(out.read_text())
    assert "done in" in proc.stdout and res["tiny"] is True and res["device"].startswith("CPU")
    assert set(res["part_seconds"]) == {"fit", "max_batch", "pseudo_label", "predict"}
    (fit,) = res["fit"]
    assert "error" not in fit, fit
    assert fit["steps"] == len(fit["step_seconds"]) == res["settings"]["steps"]
    assert fit["steps_per_s"] == pytest.approx(fit["steps"] / sum(fit["step_seconds"]))
    assert fit["images_per_s"] == pytest.approx(fit["steps_per_s"] * 3 * fit["labeled_batch"])
    (mb,) = res["max_batch"]
    assert 1 <= mb["largest_labeled_batch"] <= mb["cap"]
    _check_pseudo_label(res["pseudo_label"])
    rows = res["predict"]["rows"]
    assert not [r for r in rows if "error" in r and r["name"].startswith("Predictor")], rows
    ok = [r for r in rows if "error" not in r]
    assert any(r["name"].startswith("transformers") for r in ok) and any(r["name"].startswith("Predictor") for r in ok)
    for r in ok:  # same weights on both sides: low-precision outputs agree with the fp32 reference
        assert _finite_positive(r["images_per_s"]) and r["deviation"] < 0.05, r


def test_gpu_check_refuses_to_run_the_full_check_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full check would run")
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--parts", "predict"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "--tiny" in proc.stderr


@pytest.mark.slow
def test_bench_training_tiny_ratio_is_lightning_over_bare(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    proc = _run("bench_training.py", "--settings", "tiny", "--steps", "2", "--reps", "1", "--json", str(out))
    assert "overhead (Lightning step / bare - 1)" in proc.stdout
    (r,) = json.loads(out.read_text())["results"]
    for unit in ("wall", "cpu"):
        m, samples = r[unit], r["samples"][unit]
        assert len(samples["lightning"]) == len(samples["bare"]) == 2
        assert m["lightning"] == pytest.approx(statistics.median(samples["lightning"]))
        assert m["bare"] == pytest.approx(statistics.median(samples["bare"]))
        assert m["overhead_ratio"] == pytest.approx(m["lightning"] / m["bare"] - 1.0)
        assert m["lightning_share"] == pytest.approx(m["lightning"] - m["data"] - m["task"])
        assert all(_finite_positive(m[k]) for k in ("lightning", "bare", "task", "data", "perturb"))
    assert r["cpu_min"]["overhead_ratio"] == pytest.approx(
        min(r["samples"]["cpu"]["lightning"]) / min(r["samples"]["cpu"]["bare"]) - 1.0)


@pytest.mark.slow
def test_bench_pseudo_label_tiny(tmp_path: Path) -> None:
    out = tmp_path / "pl.json"
    proc = _run("bench_pseudo_label.py", "--images", "4", "--size", "56", "--preset", "tiny", "--batch-size", "2",
                "--workers", "0", "--reps", "1", "--json", str(out))
    assert "ratio pseudo-label / Predictor" in proc.stdout
    _check_pseudo_label(json.loads(out.read_text()))


@pytest.mark.slow
def test_bench_cpu_paths_quick_speedups_are_baseline_over_candidate(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    _run("bench_cpu_paths.py", "--quick", "--reps", "1", "--only", "torch fp32", "torch int8 dynamic (linear)",
         "--cnn-variant", "", "--json", str(out))
    res = json.loads(out.read_text())
    rows = {r["name"].split(" (batch")[0]: r for r in res["candidates"]}
    assert {"torch fp32", "torch int8 dynamic (linear)"} <= set(rows)
    # same weights converted to transformers: our fp32 agrees with the independent implementation
    assert rows["torch fp32"]["deviation"] < 1e-4
    assert rows["torch int8 dynamic (linear)"]["deviation"] < 0.1
    for r in res["candidates"]:
        assert r["speedup_vs_batch1"] == pytest.approx(res["baseline_batch1"]["cpu_s_per_image"] / r["cpu_s_per_image"])
        assert r["speedup_vs_batched"] == pytest.approx(res["baseline_batched"]["cpu_s_per_image"] / r["cpu_s_per_image"])
        assert math.isfinite(r["speedup_vs_batch1"])
