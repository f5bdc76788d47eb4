"""benchmarks/bench_cpu_paths.py: the matmul-attention candidate computes what
``scaled_dot_product_attention`` computes (chunked over heads, fp32 and bf16)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_cpu_paths", ROOT / "benchmarks" / "bench_cpu_paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("n", "dtype", "atol"), [(37, torch.float32, 1e-5), (1500, torch.float32, 1e-5),
                                                  (37, torch.bfloat16, 3e-2)])
def test_matmul_attention_equals_sdpa(n: int, dtype: torch.dtype, atol: float) -> None:
    from da_toolkit.models.encoders import dinov2

    bench = _bench()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 16, generator=g).to(dtype) for _ in range(3))
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    with bench.matmul_attention():
        out = dinov2.F.scaled_dot_product_attention(q, k, v)
    assert dinov2.F is F  # restored
    assert out.shape == q.shape and out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, atol=atol, rtol=0)
