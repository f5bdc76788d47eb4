"""models/encoders/cpu_attention: the matmul form of attention against a float64 computation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from da_toolkit.models.encoders.cpu_attention import attention, use_matmul_attention


def _qkv(dtype: torch.dtype, b: int = 2, h: int = 3, n: int = 37, d: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(b, h, n, d, generator=g).to(dtype) for _ in range(3)]


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    q, k, v = (t.double() for t in (q, k, v))
    scores = torch.einsum("bhnd,bhmd->bhnm", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("bhnm,bhmd->bhnd", scores.softmax(-1), v)


def test_bf16_inference_uses_the_matmul_form_and_matches_float64() -> None:
    q, k, v = _qkv(torch.bfloat16)
    with torch.no_grad():
        assert use_matmul_attention(q)
        out = attention(q, k, v)
        one_head_chunks = attention(q, k, v, chunk_bytes=1)  # one (batch, head) per chunk
    ref = _reference(q, k, v)
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    assert (out.double() - ref).abs().max() < 3e-2  # bf16 rounding of scores/softmax/output
    assert (one_head_chunks.double() - ref).abs().max() < 3e-2
    assert (out.double() - ref).abs().mean() < 3e-3


def test_every_other_case_is_the_fused_kernel_itself() -> None:
    q, k, v = _qkv(torch.float32)
    with torch.no_grad():
        assert not use_matmul_attention(q)
        assert torch.equal(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
    qb, kb, vb = _qkv(torch.bfloat16)
    assert torch.is_grad_enabled() and not use_matmul_attention(qb)  # training keeps SDPA
    assert torch.equal(attention(qb, kb, vb), F.scaled_dot_product_attention(qb, kb, vb))


def test_dinov2_in_bf16_stays_close_to_fp32() -> None:
    from da_toolkit.models.encoders.dinov2 import DINOv2Encoder

    torch.manual_seed(0)
    enc = DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, img_size=56, layer_indices=[0, 1, 1, 1]).eval()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        ref = enc(x).features[-1]
        low = enc.to(torch.bfloat16)(x.to(torch.bfloat16)).features[-1].float()
    assert (low - ref).abs().mean() / ref.abs().mean() < 0.02
