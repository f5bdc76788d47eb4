"""Two "nodes" (torchrun --nnodes 2, gloo on localhost) label shard sources exactly once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WORKER = textwrap.dedent('''
    import os, sys
    import numpy as np
    import torch.distributed as dist
    from da_toolkit.data.shards import ShardedImages, ShardLoader
    from da_toolkit.data.shards.pseudo import PseudoLabelShardWriter

    index, out = sys.argv[1:3]
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if distributed else 0
    stream = ShardedImages(index=index, shuffle=False)
    loader = ShardLoader(stream, batch_size=2, num_workers=1, collate_fn=list)
    with PseudoLabelShardWriter(out, f"rank{rank:03d}", "sha256:teacher", {"size": 12}, maxcount=2) as w:
        for batch in loader:
            for s in batch:
                # a deterministic stand-in teacher: disparity from the image itself
                disp = s["image"].astype(np.float32).mean(axis=2) / 255.0 + 0.1
                w.write(s["meta"]["id"], s["meta"]["image_ref"], disp, image=s["image"])
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_label_every_item_once_like_one_process(tmp_path, make_source):
    from da_toolkit.data.shards.convert import pack_source
    from da_toolkit.data.shards.pseudo import PseudoLabelShards

    pack_source(make_source(12, labeled=False), str(tmp_path / "in"), prefix="u", maxcount=3,
                image_format="png", progress=False)
    index = str(tmp_path / "in" / "u.index.json")
    script = tmp_path / "label.py"
    script.write_text(WORKER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    single = subprocess.run([sys.executable, str(script), index, str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
             "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
             str(script), index, str(tmp_path / "multi")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for node in (0, 1)
    ]
    outs = [p.communicate(timeout=300)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    names = sorted(p.name for p in (tmp_path / "multi").glob("*.index.json"))
    assert names == ["rank000.index.json", "rank001.index.json"]  # each node wrote its own shards

    def labels(root):
        return {s["meta"]["id"]: s["depth"] for s in PseudoLabelShards(str(root), shuffle=False)}

    one, two = labels(tmp_path / "single"), labels(tmp_path / "multi")
    raw_ids = [s["meta"]["id"] for s in PseudoLabelShards(str(tmp_path / "multi"), shuffle=False)]
    assert len(raw_ids) == 12 and len(set(raw_ids)) == 12  # exactly once across the two nodes
    assert sorted(two) == sorted(one) == [f"seed0/{i:08d}" for i in range(12)]
    for key in one:
        np.testing.assert_array_equal(two[key], one[key])  # identical to the single-process run
