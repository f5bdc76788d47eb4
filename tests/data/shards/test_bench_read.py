"""``benchmarks/bench_shards.py --read_only`` runs on tiny settings and its figures are what it measured:
both sources read the same bytes and deliver the same number of samples per epoch, and the ratios are
recomputed from the raw rounds. No timing is asserted (the machine's load decides those)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RGBD = ROOT.parent / "shared" / "data" / "rgbd"


def test_same_bytes_in_files_and_shards(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_shards as B
    finally:
        sys.path.pop(0)
    from da_toolkit.data.shards.stream import iter_shard
    from da_toolkit.data.sources.folders import ImageFolder

    if not RGBD.is_dir():
        pytest.fail(f"the benchmark's frames are missing: {RGBD}")
    blobs = B._images(tmp_path / "f", RGBD, 7)
    index = B._same_bytes_shards(ImageFolder(tmp_path / "f"), blobs, tmp_path / "s", maxcount=3)
    shards = json.loads(Path(index).read_text())["shardlist"]
    got = [raw["jpg"] for e in shards for _, raw in iter_shard(str(tmp_path / "s" / e["url"]))]
    assert got == [(tmp_path / "f" / f"{i:06d}.jpg").read_bytes() for i in range(7)] == blobs


@pytest.mark.slow  # a subprocess with the benchmark's imports: ~17 s at load 9
def test_read_benchmark_records_are_consistent(tmp_path):
    out = tmp_path / "read.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_shards.py"), "--read_only", "--count", "24", "--repeats",
         "2", "--workers", "0", "--crop", "28", "--rgbd", str(RGBD), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    records = json.loads(out.read_text())["read"]
    assert [(r["pipeline"], r["workers"]) for r in records] == [("decode", 0), ("decode+crop 28+collate", 0)]
    for r in records:
        # the same samples per epoch from both sources: all 24 decoded, 16 with drop_last at batch 16
        expected = 24 if r["pipeline"] == "decode" else 16
        assert r["samples_per_epoch"] == {"folder": [expected] * 2, "shards": [expected] * 2}
        ratios = [s / f for s, f in zip(r["samples_per_s"]["shards"], r["samples_per_s"]["folder"], strict=True)]
        assert r["ratios"] == pytest.approx(ratios)
        assert r["ratio_median"] == pytest.approx(statistics.median(ratios))
        assert all(math.isfinite(x) and x > 0 for x in r["cpu_ms_per_sample"]["folder"] + r["cpu_ms_per_sample"]["shards"])
        assert len(r["load_1min"]) == 2
    assert "per-stage CPU ms/sample" in proc.stdout and "load after:" in proc.stdout
