"""Self-attention for bf16 inference on CPUs: batched matmuls + softmax, chunked over heads.

On the 2-core x86 machine this project is measured on, PyTorch's fused
``scaled_dot_product_attention`` kernel in bf16 is no faster than in fp32 and took 62% of a
bf16 DINOv2-Small forward at 518x518, while plain bf16 matmuls run near the CPU's bf16 peak
(``benchmarks/bench_cpu_paths.py --profile``; docs/performance.md). Written as
``softmax(q k^T / sqrt(d)) v`` over chunks of (batch x head) whose score matrices stay under
:data:`CHUNK_BYTES`: larger blocks are fresh mmaps for glibc's allocator and are page-faulted
again on every call (measured 32 vs 14 ms per image and layer for V2-Small, bf16, 1 thread).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CHUNK_BYTES", "attention", "use_matmul_attention"]

#: upper bound of one chunk's score matrix, bytes
CHUNK_BYTES = 16 << 20


def use_matmul_attention(q: torch.Tensor) -> bool:
    """True where the matmul form is the faster one: bf16 on a CPU, no autograd (inference)."""
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and not torch.is_grad_enabled()


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_bytes: int = CHUNK_BYTES) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` for ``q, k, v`` of shape ``(B, H, N, D)``; returns ``(B, H, N, D)``.

    The same function as ``F.scaled_dot_product_attention(q, k, v)`` (no mask, no dropout);
    the matmul form is used for bf16 CPU inference (:func:`use_matmul_attention`), the fused
    kernel everywhere else.
    """
    if not use_matmul_attention(q):
        return F.scaled_dot_product_attention(q, k, v)
    b, h, n, d = q.shape
    qs, kf, vf = (q * d**-0.5).flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1)
    per = max(1, chunk_bytes // max(1, n * n * q.element_size()))
    out = [(qs[i:i + per] @ kf[i:i + per].transpose(-1, -2)).softmax(dim=-1) @ vf[i:i + per]
           for i in range(0, b * h, per)]
    return torch.cat(out).view(b, h, n, d)
