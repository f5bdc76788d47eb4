"""DINOv2 ViT encoder as used by Depth Anything V1/V2 (SPEC section 1).

Patch 14, class token, no register tokens, LayerScale, LayerNorm eps 1e-6, qkv bias, GELU MLP
(SwiGLU for the giant size). Parameter names follow the official release (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,
mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``) so official and timm checkpoints map one to one.

Position embeddings are stored for a square grid (37x37 for ``img_size=518``) and resampled
exactly like the official code: bicubic with ``scale_factor=((h+0.1)/37, (w+0.1)/37)``, no
antialias, in float32; the stored grid is used as is when the input grid equals it and is square.

Why not timm's ``VisionTransformer``: timm (like transformers) resamples position embeddings to a
target *size* (with antialias by default), which differs from the official scale-factor rule by
up to ~1e-2 at non-square sizes; the compact implementation below is exact and uses
``F.scaled_dot_product_attention``. timm and official DINOv2 checkpoints load into it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.encoders.cpu_attention import attention

__all__ = [
    "DINOV2_SIZES",
    "V2_LAYER_INDICES",
    "DINOv2Encoder",
    "bicubic_matrix",
    "resample_pos_embed",
    "traceable_pos_embed",
]

#: Width / depth / heads / feed-forward of each released size.
DINOV2_SIZES: dict[str, dict[str, int | bool]] = {
    "vits": {"embed_dim": 384, "depth": 12, "num_heads": 6, "swiglu": False},
    "vitb": {"embed_dim": 768, "depth": 12, "num_heads": 12, "swiglu": False},
    "vitl": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "swiglu": False},
    "vitg": {"embed_dim": 1536, "depth": 40, "num_heads": 24, "swiglu": True},
}

#: 0-based blocks tapped by Depth Anything V2 (V1 taps the last four blocks).
V2_LAYER_INDICES: dict[str, tuple[int, int, int, int]] = {
    "vits": (2, 5, 8, 11),
    "vitb": (2, 5, 8, 11),
    "vitl": (4, 11, 17, 23),
    "vitg": (9, 19, 29, 39),
}


def resample_pos_embed(patch_pos: torch.Tensor, grid_h: int, grid_w: int, offset: float = 0.1) -> torch.Tensor:
    """Official DINOv2 resampling of a square grid of position embeddings.

    Args:
        patch_pos: ``(1, N, C)`` embeddings of a ``sqrt(N) x sqrt(N)`` grid (no class token).
        grid_h: target grid height (input height / 14).
        grid_w: target grid width (input width / 14).
        offset: the official 0.1 added to the target grid before computing the scale factors.

    Returns:
        ``(1, grid_h * grid_w, C)`` float32.
    """
    n, dim = patch_pos.shape[1], patch_pos.shape[2]
    side = int(math.sqrt(n))
    if side * side != n:
        raise ValueError(f"position embeddings must cover a square grid, got {n} positions")
    grid = patch_pos.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    out = F.interpolate(
        grid,
        scale_factor=((grid_h + offset) / side, (grid_w + offset) / side),
        mode="bicubic",
        antialias=False,
    )
    if out.shape[-2:] != (grid_h, grid_w):  # pragma: no cover - guarded by the 0.1 offset
        raise RuntimeError(f"position embedding resampling gave {tuple(out.shape[-2:])}, expected {(grid_h, grid_w)}")
    return out.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)


#: cubic convolution coefficient of PyTorch's (and the official) bicubic interpolation
CUBIC_A = -0.75


def _cubic_weights(t: torch.Tensor, a: float = CUBIC_A) -> list[torch.Tensor]:
    """Keys cubic-convolution weights of the 4 taps ``i-1, i, i+1, i+2`` for fractions ``t``."""

    def near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def bicubic_matrix(out_len: int | torch.SymInt, in_len: int, offset: float = 0.1,
                   like: torch.Tensor | None = None) -> torch.Tensor:
    """``(out_len, in_len)`` float32 matrix ``M`` with ``M @ v`` = PyTorch bicubic resampling of ``v``.

    Matches ``F.interpolate(..., scale_factor=(out_len + offset) / in_len, mode="bicubic",
    align_corners=False)``: source coordinate ``(o + 0.5) * in_len / (out_len + offset) - 0.5``,
    4 taps, indices clamped to the border. ``out_len`` may be symbolic (traced).
    """
    device = like.device if like is not None else None
    o = torch.arange(out_len, device=device, dtype=torch.float32)
    n_out = torch.ones_like(o).sum()  # out_len as a tensor, so traced graphs keep it symbolic
    src = (o + 0.5) * (in_len / (n_out + offset)) - 0.5
    i0 = torch.floor(src)
    t = src - i0
    matrix = torch.zeros(o.shape[0], in_len, device=device, dtype=torch.float32)
    for k, w in enumerate(_cubic_weights(t)):
        idx = (i0 + (k - 1)).clamp(0, in_len - 1).long()
        matrix = matrix + w[:, None] * F.one_hot(idx, in_len).float()
    return matrix


def traceable_pos_embed(pos_embed: torch.Tensor, grid_h: int | torch.SymInt,
                        grid_w: int | torch.SymInt) -> torch.Tensor:
    """The official resampling of ``pos_embed`` ``(1, 1 + S*S, C)`` to ``(1, 1 + grid_h*grid_w, C)``
    with sizes that may be symbolic: bicubic as :func:`bicubic_matrix` products, and the official
    shortcut (stored grid used as is when the token grid equals it) as a ``torch.where``."""
    side = round((pos_embed.shape[1] - 1) ** 0.5)
    dim = pos_embed.shape[2]
    grid = pos_embed[:, 1:].float().reshape(side, side, dim)
    mh = bicubic_matrix(grid_h, side, like=pos_embed)
    mw = bicubic_matrix(grid_w, side, like=pos_embed)
    same = (torch.ones_like(mh[:, 0]).sum() == side) & (torch.ones_like(mw[:, 0]).sum() == side)
    eye_h = F.one_hot(torch.arange(mh.shape[0], device=pos_embed.device).clamp(max=side - 1), side).float()
    eye_w = F.one_hot(torch.arange(mw.shape[0], device=pos_embed.device).clamp(max=side - 1), side).float()
    mh = torch.where(same, eye_h, mh)
    mw = torch.where(same, eye_w, mw)
    patch = torch.einsum("hi,ijc,wj->hwc", mh, grid, mw).reshape(1, -1, dim)
    return torch.cat([pos_embed[:, :1].float(), patch], dim=1).to(pos_embed.dtype)


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: ``(B,3,H,W) -> (B, H/p * W/p, C)``."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (``F.scaled_dot_product_attention``;
    for bf16 inference on a CPU the faster matmul form of :mod:`.cpu_attention`)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = attention(qkv[0], qkv[1], qkv[2])  # fused SDPA; bf16 CPU inference: chunked matmuls
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """GELU feed-forward ``fc1 -> GELU -> fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLU(nn.Module):
    """SwiGLU feed-forward of DINOv2-giant: ``w3(silu(a) * b)`` with ``(a, b) = w12(x)`` halves.

    The hidden width is two thirds of ``hidden``, rounded up to a multiple of 8 (official rule).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        inner = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * inner)
        self.w3 = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class LayerScale(nn.Module):
    """Per-channel scale ``x * gamma``."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale on both branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, swiglu: bool, layerscale_init: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, layerscale_init)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp: nn.Module = SwiGLU(dim, hidden) if swiglu else Mlp(dim, hidden)
        self.ls2 = LayerScale(dim, layerscale_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DINOv2Encoder(Encoder):
    """DINOv2 ViT returning four token maps (final LayerNorm applied) and their class tokens.

    ``forward(x: (B,3,H,W) ImageNet-normalised, H and W multiples of 14) -> EncoderOutput`` with
    ``features[i]`` of shape ``(B, embed_dim, H/14, W/14)`` and ``cls_tokens[i]`` ``(B, embed_dim)``.

    Args:
        embed_dim, depth, num_heads: width, number of blocks, attention heads.
        mlp_ratio: feed-forward expansion.
        swiglu: SwiGLU feed-forward (giant) instead of GELU MLP.
        patch_size: patch side in pixels.
        img_size: side of the square image the position embeddings are stored for (518 -> 37x37).
        layer_indices: 0-based blocks to tap (duplicates allowed); default: the last four (V1),
            with block 0 repeated when there are fewer than four blocks.
        layerscale_init: initial LayerScale value (1.0 in the Depth Anything releases).
    """

    def __init__(
        self,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        swiglu: bool = False,
        patch_size: int = 14,
        img_size: int = 518,
        layer_indices: Sequence[int] | None = None,
        layerscale_init: float = 1.0,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        # default: the last four blocks (V1); shallower test models repeat block 0
        taps = tuple(layer_indices) if layer_indices is not None else tuple(max(depth - 4 + i, 0) for i in range(4))
        if not taps or any(not 0 <= i < depth for i in taps):
            raise ValueError(f"layer_indices {list(taps)} must be in [0, {depth}) for a {depth}-block ViT")
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.swiglu = swiglu
        self.img_size = img_size
        self.layer_indices: tuple[int, ...] = taps
        self.patch_size = patch_size
        self.out_channels = [embed_dim] * len(taps)
        self.reductions = [patch_size] * len(taps)
        grid = img_size // patch_size

        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # kept for checkpoint compatibility
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, swiglu, layerscale_init) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pos_embed_for(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embeddings ``(1, 1 + grid_h*grid_w, C)`` for a ``grid_h x grid_w`` token grid.

        Concrete sizes use ``F.interpolate`` (:func:`resample_pos_embed`); symbolic sizes (ONNX /
        ``torch.export`` with dynamic height and width) use the same official rule written as two
        interpolation matrices (:func:`traceable_pos_embed`), which keeps the sizes symbolic.
        """
        if not (isinstance(grid_h, int) and isinstance(grid_w, int)):
            return traceable_pos_embed(self.pos_embed, grid_h, grid_w)
        n = self.pos_embed.shape[1] - 1
        if grid_h * grid_w == n and grid_h == grid_w:
            return self.pos_embed
        patch_pos = resample_pos_embed(self.pos_embed[:, 1:], grid_h, grid_w)
        pos = torch.cat([self.pos_embed[:, :1].float(), patch_pos], dim=1)
        return pos.to(self.pos_embed.dtype)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Embedded tokens ``(B, 1 + h*w, C)`` (class token first) before the blocks."""
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1).to(t.dtype), t], dim=1)
        return t + self.pos_embed_for(gh, gw).to(t.dtype)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """``x`` (B,3,H,W) ImageNet-normalised, sides multiples of ``patch_size`` -> 4 token maps + class tokens."""
        self.check_input(x)
        b = x.shape[0]
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.tokens(x)
        wanted = set(self.layer_indices)
        last = max(wanted)
        tapped: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in wanted:
                tapped[i] = self.norm(t)
            if i == last:
                break
        features, cls_tokens = [], []
        for i in self.layer_indices:
            out = tapped[i]
            cls_tokens.append(out[:, 0])
            features.append(out[:, 1:].transpose(1, 2).reshape(b, self.embed_dim, gh, gw))
        return EncoderOutput(features, cls_tokens)
