"""Two "nodes" (torchrun --nnodes 2, gloo on localhost) run the real `da-toolkit pseudo-label` over a
shard source: every record labeled exactly once, and the same labels as a one-process run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, name: str, index: str, weights: str) -> str:
    cfg = {"store": str(tmp_path / name), "format": "shards", "shards": {"maxcount": 2},
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False},
           "model": {"teacher": {"preset": "tiny", "weights": weights}},
           "data": {"sources": [{"class_path": "sharded_images", "init_args": {"index": index}}],
                    "input_size": 28, "batch_size": 1, "num_workers": 1}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.slow
def test_two_nodes_run_the_pseudo_label_command_once_per_record_like_one_process(tmp_path, make_source):
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShards, read_store_indexes
    from tests.cli.test_pseudo_label import _weights

    src = make_source(9, labeled=False)
    pack_source(src, str(tmp_path / "in"), prefix="u", maxcount=3, image_format="png", progress=False)
    index = str(tmp_path / "in" / "u.index.json")
    weights = _weights(tmp_path / "t.safetensors")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # same kernels in every process: same numbers
    command = [sys.executable, "-m", "da_toolkit.cli", "pseudo-label"]
    single = subprocess.run([*command, "--config", _config(tmp_path, "single", index, weights)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=600, check=False)
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
             "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
             "-m", "da_toolkit.cli", "pseudo-label", "--config", _config(tmp_path, "multi", index, weights),
             "--trainer.strategy", "ddp", "--trainer.num_nodes", "2"],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for node in (0, 1)
    ]
    outs = [p.communicate(timeout=600)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    indexes = read_store_indexes(str(tmp_path / "multi"))
    assert sorted(indexes) == ["rank000", "rank001"]  # each node wrote its own shards
    per_rank = {name: [i for e in index["shardlist"] for i in e["ids"]] for name, index in indexes.items()}
    assert all(per_rank.values())  # both nodes did work
    raw_ids = [i for ids in per_rank.values() for i in ids]
    assert sorted(raw_ids) == [f"seed0/{i:08d}" for i in range(9)]  # exactly once across the two nodes
    assert indexes["rank000"]["teacher_hash"] == indexes["rank001"]["teacher_hash"]

    def labels(name: str) -> dict[str, dict]:
        return {s["meta"]["id"]: s for s in PseudoLabelShards(str(tmp_path / name), shuffle=False)}

    one, two = labels("single"), labels("multi")
    assert sorted(one) == sorted(two)
    for key in one:
        np.testing.assert_array_equal(two[key]["depth"], one[key]["depth"])  # identical to the 1-process run
        np.testing.assert_array_equal(two[key]["image"], one[key]["image"])
