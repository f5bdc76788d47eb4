"""Dead-at-initialisation rate of relative DPT heads, before and after the positive head init.

A freshly built relative model is *dead* when its output (ReLU head) is identically 0 on a probe
batch: the loss then has zero gradient and training cannot start. For each encoder family and
each seed the model is built twice from the encoder/decoder classes with random weights (no
downloads): once with PyTorch's default init of the final 1x1 conv ("before": the init function
:func:`da_toolkit.models.decoders.dpt.init_positive_head` replaced by a no-op, so every other
weight is the same) and once as built today ("after").

    python benchmarks/bench_dead_heads.py --seeds 24

Prints one row per family: dead seeds before / after, and the dead seeds' numbers. Measured
(2026-12-01, CPU, seeds 0-23, probe 2 images of 56 px (ViT) / 64 px (CNNs), training mode):

    family           dead before  dead after
    tiny-dinov2         9/24        0/24
    timm-resnet18      11/24        0/24
    convnext-atto       6/24        0/24
    small-cnn           9/24        0/24

The "before" seeds equal those of the code before the fix run directly (same nine tiny-dinov2
seeds 1, 3, 5, 8, 9, 11, 12, 16, 20), so the no-op replacement reproduces the old models exactly.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from da_toolkit.models.decoders import dpt as dpt_module
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders import ConvNeXtEncoder, DINOv2Encoder, TimmEncoder
from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.preprocess import normalize


class SmallCNNEncoder(Encoder):
    """Four conv3x3-stride-2 + BN + ReLU stages (16, 32, 64, 128 channels; strides 2-16)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers, c_in = [], 3
        for c in chans:
            layers.append(nn.Sequential(nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()))
            c_in = c
        self.stages = nn.ModuleList(layers)
        self.out_channels = chans
        self.reductions = [2, 4, 8, 16]

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return EncoderOutput(features=feats, cls_tokens=None)


def _decoder() -> DPTDecoder:
    # the decoder of the built-in tiny preset
    return DPTDecoder(features=16, out_channels=[8, 16, 32, 32], max_depth=None)


#: family -> (encoder factory, probe side)
FAMILIES: dict[str, tuple[Callable[[], Encoder], int]] = {
    "tiny-dinov2": (
        lambda: DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, img_size=56, layer_indices=[0, 0, 1, 1]),
        56,
    ),
    "timm-resnet18": (lambda: TimmEncoder(name="resnet18"), 64),
    "convnext-atto": (lambda: ConvNeXtEncoder(variant="atto"), 64),
    "small-cnn": (SmallCNNEncoder, 64),
}


@contextlib.contextmanager
def default_head_init() -> Iterator[None]:
    """Build models with PyTorch's default init of the final conv (the rule before the fix)."""
    saved = getattr(dpt_module, "init_positive_head", None)
    if saved is None:  # a tree without the fix: nothing to undo
        yield
        return
    dpt_module.init_positive_head = lambda conv: None
    try:
        yield
    finally:
        dpt_module.init_positive_head = saved


def probe_images(side: int, n: int = 2, seed: int = 1234) -> torch.Tensor:
    """``(n,3,side,side)`` in [0,1]: smooth random fields plus a little noise (fixed seed)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    smooth = nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=True)
    return (smooth + 0.1 * torch.rand(n, 3, side, side, generator=g)).clamp(0, 1)


def build(family: str, seed: int) -> DepthModel:
    torch.manual_seed(seed)
    make_encoder, _ = FAMILIES[family]
    return DepthModel(make_encoder(), _decoder())


@torch.no_grad()
def is_dead(model: DepthModel, images: torch.Tensor) -> bool:
    """True when the model's output is identically 0 on ``images`` (training mode, as at step 0)."""
    model.train()
    return bool((model(normalize(images)) == 0).all())


def dead_seeds(family: str, seeds: range, before: bool) -> list[int]:
    images = probe_images(FAMILIES[family][1])
    out = []
    for seed in seeds:
        ctx = default_head_init() if before else contextlib.nullcontext()
        with ctx:
            model = build(family, seed)
        if is_dead(model, images):
            out.append(seed)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=24, help="seeds 0..N-1 per family (default 24)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args()
    seeds = range(args.seeds)
    print(f"{'family':<15} {'dead before':>12} {'dead after':>11}  dead seeds before / after")
    for family in args.families:
        before = dead_seeds(family, seeds, before=True)
        after = dead_seeds(family, seeds, before=False)
        print(f"{family:<15} {len(before):>5}/{len(seeds):<6} {len(after):>4}/{len(seeds):<6}  {before} / {after}")


if __name__ == "__main__":
    main()
