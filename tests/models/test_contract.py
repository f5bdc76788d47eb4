"""check_encoder / check_model: a dry forward compared with what the encoder declares."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from da_toolkit.models import DepthModel, build_tiny_model
from da_toolkit.models.contract import (
    EncoderContractError,
    check_encoder,
    check_model,
    dry_input_size,
)
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.encoders import ConvNeXtEncoder, DINOv2Encoder, TimmEncoder
from da_toolkit.models.encoders.base import Encoder, EncoderOutput

KEY = "model.init_args.encoder"


class Pyramid(Encoder):
    """A 4-level CNN pyramid; ``true_reductions``/``true_channels`` are what it really returns."""

    def __init__(
        self,
        true_reductions: tuple[int, ...] = (4, 8, 16, 32),
        true_channels: tuple[int, ...] = (8, 16, 24, 32),
        declared_reductions: tuple[int, ...] = (4, 8, 16, 32),
        declared_channels: tuple[int, ...] = (8, 16, 24, 32),
    ) -> None:
        super().__init__()
        self.true_reductions = list(true_reductions)
        self.convs = nn.ModuleList(nn.Conv2d(3, c, 1) for c in true_channels)
        self.norm = nn.BatchNorm2d(3)
        self.out_channels = list(declared_channels)
        self.reductions = list(declared_reductions)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        x = self.norm(x)
        return EncoderOutput([conv(F.avg_pool2d(x, r)) for conv, r in zip(self.convs, self.true_reductions)], None)


class Crashing(Pyramid):
    def forward(self, x: torch.Tensor) -> EncoderOutput:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class BadTokens(Pyramid):
    def forward(self, x: torch.Tensor) -> EncoderOutput:
        out = super().forward(x)
        return EncoderOutput(out.features, [torch.zeros(1, 5) for _ in out.features])


def test_honest_encoders_pass_and_nothing_changes() -> None:
    enc = Pyramid()
    enc.train()
    enc.norm.eval()  # a frozen part keeps its own mode
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    rng = torch.random.get_rng_state()
    check_encoder(enc, KEY, levels=4)
    assert enc.training and not enc.norm.training and enc.convs[0].training
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # BN running stats untouched
    assert torch.equal(torch.random.get_rng_state(), rng)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, layer_indices=(0, 1, 0, 1)),
        lambda: TimmEncoder("resnet18"),
        lambda: ConvNeXtEncoder("atto"),
    ],
    ids=["dinov2", "timm-resnet18", "convnext-atto"],
)
def test_builtin_encoders_pass(make) -> None:
    check_encoder(make(), KEY, levels=4)


def test_dry_input_size_is_a_common_multiple_and_not_square() -> None:
    assert dry_input_size(Pyramid()) == (64, 96)
    vit = DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, layer_indices=(0, 1, 0, 1))
    assert dry_input_size(vit) == (28, 42)


def test_lying_strides_are_caught_while_the_model_runs_silently() -> None:
    liar = Pyramid(true_reductions=(2, 4, 8, 16))
    model = DepthModel(liar, DPTDecoder(features=8, out_channels=(8, 8, 8, 8)))
    assert model(torch.rand(1, 3, 64, 96)).shape == (1, 64, 96)  # nothing complains without the check
    with pytest.raises(EncoderContractError) as info:
        check_encoder(liar, KEY)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{KEY}: {__name__}.Pyramid declares out_channels [8, 16, 24, 32] and reductions [4, 8, 16, 32]")
    assert "['8x16x24', '16x8x12', '24x4x6', '32x2x3']" in msg  # expected
    assert "['8x32x48', '16x16x24', '24x8x12', '32x4x6']" in msg and "strides ['2x2', '4x4', '8x8', '16x16']" in msg
    with pytest.raises(EncoderContractError, match=r"^model\.init_args\.encoder: .*Pyramid declares .*strides"):
        check_model(model)


def test_lying_channels_and_level_counts() -> None:
    with pytest.raises(EncoderContractError, match=r"returned 4 levels \['8x16x24', '16x8x12', '99x4x6', '32x2x3'\]"):
        check_encoder(Pyramid(true_channels=(8, 16, 99, 32)), KEY)
    with pytest.raises(EncoderContractError, match=r"should give 4 levels .* it returned 3 levels"):
        check_encoder(Pyramid(true_reductions=(4, 8, 16), true_channels=(8, 16, 24)), KEY)
    three = Pyramid((4, 8, 16), (8, 16, 24), (4, 8, 16), (8, 16, 24))
    check_encoder(three, KEY)  # honest about its 3 levels
    with pytest.raises(EncoderContractError, match=r"declares 3 levels \(out_channels \[8, 16, 24\]\); the decoder needs 4"):
        check_encoder(three, KEY, levels=4)
    with pytest.raises(EncoderContractError, match=r"declares 4 out_channels .* but 3 reductions"):
        check_encoder(Pyramid(declared_reductions=(4, 8, 16)), KEY)


def test_bad_declarations_crashes_and_tokens_are_named() -> None:
    enc = Pyramid()
    enc.reductions = "4,8"  # type: ignore[assignment]
    with pytest.raises(EncoderContractError, match="must declare out_channels and reductions as lists of positive ints"):
        check_encoder(enc, KEY)
    with pytest.raises(EncoderContractError) as info:
        check_encoder(Crashing(), "teacher.init_args.encoder")
    msg = str(info.value)
    assert msg.startswith("teacher.init_args.encoder: ") and "Crashing failed on a dry forward of a (1, 3, 64, 96) input" in msg
    assert "RuntimeError: mat1 and mat2" in msg and "test_contract.py:" in msg and "\n" not in msg
    with pytest.raises(EncoderContractError, match=r"cls_tokens \[\(1, 5\), .*expected None or one \(B, C\) per level"):
        check_encoder(BadTokens(), KEY)


def test_check_model_on_the_tiny_model_and_a_wrong_decoder_output() -> None:
    model = build_tiny_model()
    check_model(model)

    class FlatDecoder(DPTDecoder):
        def forward(self, enc, size):  # (B,1,H,W) instead of (B,H,W)
            return super().forward(enc, size)[:, None]

    bad = DepthModel(model.encoder, FlatDecoder(features=16, out_channels=(8, 8, 8, 8)))
    with pytest.raises(EncoderContractError, match=r"^model\.init_args\.decoder: .*FlatDecoder returned a torch\.float32 "
                       r"tensor of shape \(1, 1, 28, 42\) for a \(1, 3, 28, 42\) input; expected \(B,H,W\) = \(1, 28, 42\)"):  # fmt: skip
        check_model(bad)


def test_smp_encoders_extra_input_channels_and_dilated_strides() -> None:
    from da_toolkit.models.decoders.smp_decoder import SmpDecoder
    from da_toolkit.models.encoders import SmpEncoder

    rgbd = SmpEncoder("resnet18", in_channels=4)
    check_encoder(rgbd, KEY, levels=4)  # the dry input has the encoder's 4 channels
    dilated = SmpEncoder("resnet18", output_stride=16)
    assert dilated.reductions == [4, 8, 16, 16]
    check_encoder(dilated, KEY, levels=4)
    check_model(DepthModel(SmpEncoder("resnet18"), SmpDecoder("fpn")))


def test_a_crashing_decoder_is_named_as_the_decoder() -> None:
    class NeedsClsTokens(DPTDecoder):
        pass

    model = DepthModel(Pyramid(), NeedsClsTokens(features=8, out_channels=(8, 8, 8, 8), use_clstoken=True))
    with pytest.raises(EncoderContractError) as info:
        check_model(model, where="model.init_args.model")
    msg = str(info.value)
    assert msg.startswith("model.init_args.model.init_args.decoder: ") and "NeedsClsTokens failed on a dry forward" in msg
    assert "needs an encoder returning class tokens" in msg and "\n" not in msg
