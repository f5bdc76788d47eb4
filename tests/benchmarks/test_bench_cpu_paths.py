"""benchmarks/bench_cpu_paths.py: the matmul-attention candidate computes what
``scaled_dot_product_attention`` computes (chunked over heads, fp32 and bf16)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from bench_loader import load_benchmark_module

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    return load_benchmark_module("bench_cpu_paths")


def test_fused_attention_row_swaps_the_library_attention_for_sdpa_and_restores_it() -> None:
    from da_toolkit.models.encoders import cpu_attention, dinov2

    bench = _bench()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 37, 16, generator=g).bfloat16() for _ in range(3))
    with torch.no_grad():
        with bench.fused_attention():
            assert dinov2.attention is F.scaled_dot_product_attention
            fused = dinov2.attention(q, k, v)
        assert dinov2.attention is cpu_attention.attention  # restored
        ours = dinov2.attention(q, k, v)  # the matmul form (bf16, CPU, no grad)
    torch.testing.assert_close(ours.float(), fused.float(), atol=3e-2, rtol=0)
    assert torch.equal(fused, F.scaled_dot_product_attention(q, k, v))
