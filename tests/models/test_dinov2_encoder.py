"""DINOv2 encoder: shapes, taps, attention/block maths, position-embedding resampling, timm parity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from da_toolkit.models.encoders import DINOv2Encoder, EncoderOutput
from da_toolkit.models.encoders.dinov2 import (
    DINOV2_SIZES,
    V2_LAYER_INDICES,
    Attention,
    SwiGLU,
    resample_pos_embed,
)


def _tiny(**kw) -> DINOv2Encoder:
    args = {"embed_dim": 32, "depth": 3, "num_heads": 2, "img_size": 56}
    args.update(kw)
    return DINOv2Encoder(**args).eval()


def test_shapes_and_cls_tokens() -> None:
    enc = _tiny(layer_indices=(0, 2, 1, 2))
    out = enc(torch.randn(2, 3, 42, 70))
    assert isinstance(out, EncoderOutput)
    assert [tuple(f.shape) for f in out.features] == [(2, 32, 3, 5)] * 4
    assert out.cls_tokens is not None and [tuple(c.shape) for c in out.cls_tokens] == [(2, 32)] * 4
    assert enc.out_channels == [32] * 4 and enc.reductions == [14] * 4 and enc.patch_size == 14


def test_default_taps_are_last_four_and_v2_indices() -> None:
    assert _tiny(depth=6).layer_indices == (2, 3, 4, 5)
    assert _tiny(depth=2).layer_indices == (0, 0, 0, 1)
    assert V2_LAYER_INDICES == {"vits": (2, 5, 8, 11), "vitb": (2, 5, 8, 11),
                                "vitl": (4, 11, 17, 23), "vitg": (9, 19, 29, 39)}
    with pytest.raises(ValueError, match="layer_indices"):
        _tiny(layer_indices=(0, 3))


def test_taps_are_normed_block_outputs() -> None:
    """Each feature map is the final LayerNorm of the tapped block's tokens, in tap order."""
    enc = _tiny(layer_indices=(2, 0, 1, 1))
    x = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        out = enc(x)
        t = enc.tokens(x)
        per_block = []
        for blk in enc.blocks:
            t = blk(t)
            per_block.append(F.layer_norm(t, (32,), enc.norm.weight, enc.norm.bias, eps=1e-6))
    for feat, cls, idx in zip(out.features, out.cls_tokens, (2, 0, 1, 1)):
        ref = per_block[idx]
        torch.testing.assert_close(cls, ref[:, 0])
        # token (row r, col c) of the 2x3 grid is token 1 + r*3 + c
        torch.testing.assert_close(feat[0, :, 1, 2], ref[0, 1 + 1 * 3 + 2])


def test_attention_matches_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = Attention(8, 2)
    x = torch.randn(2, 5, 8)
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias
    q, k, v = qkv.split(8, dim=-1)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(w @ v[..., sl])
    ref = torch.cat(heads, -1) @ attn.proj.weight.T + attn.proj.bias
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_swiglu_width_and_formula() -> None:
    g = SwiGLU(1536, 6144)
    assert g.w12.out_features == 2 * 4096 and g.w3.in_features == 4096  # official giant width
    small = SwiGLU(6, 24)  # int(24*2/3)=16 -> 16
    x = torch.randn(3, 6)
    h = x @ small.w12.weight.T + small.w12.bias
    a, b = h[:, :16], h[:, 16:]
    ref = (a * torch.sigmoid(a) * b) @ small.w3.weight.T + small.w3.bias
    torch.testing.assert_close(small(x), ref)
    assert DINOV2_SIZES["vitg"]["swiglu"] is True and DINOV2_SIZES["vitl"]["swiglu"] is False


def test_input_must_be_multiple_of_patch() -> None:
    with pytest.raises(ValueError, match="multiples of the patch size 14"):
        _tiny()(torch.randn(1, 3, 30, 28))
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        _tiny()(torch.randn(1, 4, 28, 28))


def test_square_stored_grid_is_used_as_is() -> None:
    enc = _tiny()
    assert enc.pos_embed_for(4, 4) is enc.pos_embed


@pytest.mark.parametrize(("gh", "gw"), [(26, 37), (37, 49), (3, 5), (40, 40)])
def test_resampling_matches_independent_reference(gh, gw, pos_reference) -> None:
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + 37 * 37, 6)
    ours = resample_pos_embed(pos[:, 1:], gh, gw)
    ref = pos_reference(pos[0].double().numpy(), gh, gw)[1:]
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=5e-5)  # float32 vs float64 rounding


def test_resampling_in_encoder_keeps_cls_position() -> None:
    enc = _tiny()
    pos = enc.pos_embed_for(2, 3)
    assert pos.shape == (1, 7, 32)
    torch.testing.assert_close(pos[:, 0], enc.pos_embed[:, 0])


def test_timm_dinov2_parity(tmp_path) -> None:
    """timm's DINOv2 ViT (independent implementation) with our weights gives the same tokens."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from da_toolkit.models.weights import load_encoder_weights

    ref = timm.create_model(
        "vit_small_patch14_dinov2", pretrained=False, img_size=56, embed_dim=32, depth=2, num_heads=2,
        num_classes=0,
    ).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    enc = _tiny(depth=2, layer_indices=(1, 1, 1, 1))
    path = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    loaded = load_encoder_weights(enc, path)
    assert loaded.format == "dinov2"
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        tokens = ref.forward_features(x)
        out = enc(x)
    torch.testing.assert_close(out.cls_tokens[0], tokens[:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.features[0].flatten(2).transpose(1, 2), tokens[:, 1:], atol=1e-5, rtol=1e-4)


def test_timm_giant_packed_swiglu_parity(tmp_path) -> None:
    """timm's DINOv2-giant layout (packed SwiGLU ``mlp.fc1``/``mlp.fc2``, no ``mask_token``) loads
    into our SwiGLU encoder (``mlp.w12``/``mlp.w3``) and gives timm's tokens."""
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from da_toolkit.models.weights import load_encoder_weights

    ref = timm.create_model(
        "vit_giant_patch14_dinov2", pretrained=False, img_size=56, embed_dim=48, depth=2, num_heads=2,
        num_classes=0,
    ).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    sd = ref.state_dict()
    assert sd["blocks.0.mlp.fc1.weight"].shape[0] == 2 * sd["blocks.0.mlp.fc2.weight"].shape[1]  # packed
    enc = _tiny(embed_dim=48, depth=2, swiglu=True, layer_indices=(0, 1, 1, 1))
    path = tmp_path / "timm_giant.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, path)
    assert load_encoder_weights(enc, path).format == "dinov2"
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        tokens = ref.forward_features(x)
        out = enc(x)
    torch.testing.assert_close(out.cls_tokens[1], tokens[:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.features[1].flatten(2).transpose(1, 2), tokens[:, 1:], atol=1e-5, rtol=1e-4)
