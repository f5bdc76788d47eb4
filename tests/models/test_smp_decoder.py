"""SmpDecoder: smp decoder architectures with the toolkit's depth head, on smp and toolkit encoders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("segmentation_models_pytorch")
pytest.importorskip("timm")

from da_toolkit.losses.feature_alignment import FeatureAlignmentLoss
from da_toolkit.models import (
    DepthModel,
    build_model,
    build_tiny_model,
    describe_model,
    load_model,
)
from da_toolkit.models.decoders import BUILTIN_DECODERS, DPTDecoder
from da_toolkit.models.decoders.smp_decoder import SMP_ARCHITECTURES, SmpDecoder
from da_toolkit.models.encoders import ConvNeXtEncoder, TimmEncoder
from da_toolkit.models.encoders.smp_encoder import SmpEncoder
from da_toolkit.models.weights import save_weights

TINY_TU = "tu-mobilenetv3_small_050"
#: smaller smp decoders, so every architecture runs in well under a second
SMALL = {
    "unet": {"decoder_channels": [32, 16, 16, 8, 8]},
    "unetplusplus": {"decoder_channels": [16, 16, 8, 8, 8]},
    "manet": {"decoder_channels": [32, 16, 16, 8, 8], "pab_channels": 8},
    "linknet": {"prefinal_channels": 8},
    "fpn": {"pyramid_channels": 16, "segmentation_channels": 32},  # GroupNorm(32) inside
    "pan": {"decoder_channels": 8},
    "upernet": {"decoder_channels": 16},
    "segformer": {"segmentation_channels": 16},
    "deeplabv3plus": {"out_channels": 16},
    "pspnet": {"out_channels": 16},
}


def _encoder(arch: str) -> SmpEncoder:
    # DeepLabV3+ is defined on a dilated encoder (deepest stride 16)
    return SmpEncoder(TINY_TU, output_stride=16 if arch == "deeplabv3plus" else 32)


def _model(arch: str, max_depth: float | None = None) -> DepthModel:
    return DepthModel(_encoder(arch), SmpDecoder(arch, max_depth=max_depth, decoder_kwargs=SMALL[arch]))


def test_registered_and_small_configs_cover_every_architecture() -> None:
    assert BUILTIN_DECODERS["smp_decoder"] is SmpDecoder
    assert set(SMALL) == set(SMP_ARCHITECTURES)


@pytest.mark.parametrize("arch", sorted(SMP_ARCHITECTURES))
def test_every_architecture_trains_and_predicts_at_input_resolution(arch: str) -> None:
    torch.manual_seed(0)
    model = _model(arch)
    # PAN's pyramid attention needs the deepest level >= 8x8
    h, w = (256, 320) if arch == "pan" else (64, 96)
    x = torch.randn(2, 3, h, w)
    y = model(x)
    assert y.shape == (2, h, w) and torch.isfinite(y).all()
    assert (y >= 0).all() and (y > 0).any(), "relative head: ReLU output, not dead at init"
    y.mean().backward()
    for part in (model.encoder, model.decoder.body, model.decoder.head):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{arch}: no gradient in {type(part)}"
    model.eval()
    with torch.no_grad():
        tall = model(torch.randn(1, 3, w, h))
    assert tall.shape == (1, w, h)


@pytest.mark.parametrize("arch", ["unet", "fpn", "unetplusplus", "segformer", "deeplabv3plus"])
def test_sides_that_are_not_multiples_of_32(arch: str) -> None:
    model = _model(arch).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 70, 100))
    assert y.shape == (1, 70, 100) and torch.isfinite(y).all()


def test_metric_head_is_sigmoid_times_max_depth_of_the_relative_pre_activation() -> None:
    """Same weights: metric = sigmoid(z) * max_depth where the relative output relu(z) > 0."""
    torch.manual_seed(0)
    rel = _model("unet").eval()
    met = DepthModel(SmpEncoder(TINY_TU), SmpDecoder("unet", max_depth=20.0, decoder_kwargs=SMALL["unet"])).eval()
    assert (rel.output_kind, met.output_kind, met.max_depth) == ("disparity", "metric", 20.0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():  # the fresh head is positive everywhere: shift half the pixels below 0
        rel.decoder.head[2].bias.sub_(rel(x).median())
    met.load_state_dict(rel.state_dict())
    with torch.no_grad():
        r, m = rel(x), met(x)
    assert ((m > 0) & (m < 20.0)).all()
    pos = r > 0
    assert pos.any() and (~pos).any()
    torch.testing.assert_close(m[pos], torch.sigmoid(r[pos]) * 20.0)
    assert (m[~pos] <= 10.0 + 1e-5).all(), "where relu(z) == 0, z <= 0 so sigmoid(z) * 20 <= 10"


def test_decoder_kwargs_reach_the_smp_decoder() -> None:
    model = DepthModel(SmpEncoder(TINY_TU), SmpDecoder("unet", head_channels=4,
                                                      decoder_kwargs={"decoder_channels": [24, 12, 8, 6, 5]}))
    assert model.decoder.head[0].in_channels == 5 and model.decoder.head[0].out_channels == 4
    assert [b.conv1[0].out_channels for b in model.decoder.body.blocks] == [24, 12, 8, 6, 5]


@pytest.mark.parametrize("encoder", ["convnext", "timm"])
def test_smp_decoder_on_toolkit_cnn_encoders(encoder: str) -> None:
    enc = ConvNeXtEncoder("atto") if encoder == "convnext" else TimmEncoder("resnet18")
    model = DepthModel(enc, SmpDecoder("unet", decoder_kwargs=SMALL["unet"]))
    y = model(torch.randn(2, 3, 64, 96))
    assert y.shape == (2, 64, 96)
    y.mean().backward()
    assert model.input_multiple == 32


def test_dpt_decoder_on_the_smp_encoder() -> None:
    model = DepthModel(SmpEncoder(TINY_TU), DPTDecoder(16, (8, 16, 32, 32)))
    assert model.decoder.resize_factors == [1.0, 1.0, 1.0, 1.0]  # a pyramid, no ViT resizes
    y = model(torch.randn(2, 3, 64, 96))
    assert y.shape == (2, 64, 96)
    y.mean().backward()


def test_unfit_encoders_and_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="ViT encoders .* need the dpt decoder"):
        DepthModel(build_tiny_model().encoder, SmpDecoder("unet"))
    with pytest.raises(ValueError, match="deeplabv3plus.*needs a dilated encoder"):
        DepthModel(SmpEncoder(TINY_TU), SmpDecoder("deeplabv3plus"))
    with pytest.raises(ValueError, match="'fpn'.*cannot use a dilated encoder"):
        DepthModel(SmpEncoder(TINY_TU, output_stride=16), SmpDecoder("fpn"))
    with pytest.raises(ValueError, match="unknown architecture 'unet3'"):
        SmpDecoder("unet3")
    with pytest.raises(ValueError, match=r"unknown decoder_kwargs \['decoder_chanels'\]"):
        SmpDecoder("unet", decoder_kwargs={"decoder_chanels": [8]})
    with pytest.raises(ValueError, match="max_depth must be positive"):
        SmpDecoder("unet", max_depth=0)
    dec = SmpDecoder("unet")
    DepthModel(SmpEncoder(TINY_TU), dec)
    with pytest.raises(ValueError, match="was built for encoder channels"):
        dec.attach(SmpEncoder("resnet18"))


def _perturbed(model: DepthModel) -> DepthModel:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def test_describe_build_round_trip_and_self_describing_file(tmp_path: Path) -> None:
    model = _perturbed(DepthModel(SmpEncoder(TINY_TU, in_channels=3, levels=[2, 3, 4, 5]),
                                  SmpDecoder("fpn", max_depth=10.0, decoder_kwargs=SMALL["fpn"])))
    desc = describe_model(model)
    enc, dec = desc["init_args"]["encoder"], desc["init_args"]["decoder"]
    assert enc["class_path"] == "da_toolkit.models.encoders.smp_encoder.SmpEncoder"
    assert enc["init_args"] == {"name": TINY_TU, "in_channels": 3, "levels": [2, 3, 4, 5],
                                "output_stride": 32, "weights": None}
    assert dec["init_args"]["architecture"] == "fpn" and dec["init_args"]["max_depth"] == 10.0
    rebuilt = build_model(json.loads(json.dumps(desc)))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), rebuilt.eval()(x), rtol=0, atol=0)
    path = tmp_path / "smp.safetensors"
    save_weights(model, path)
    again = load_model(path)
    assert isinstance(again.decoder, SmpDecoder) and again.max_depth == 10.0
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x), rtol=0, atol=0)


def test_feature_alignment_with_a_projector_between_smp_and_convnext_features() -> None:
    """Student smp features (288 ch at stride 32) vs a frozen ConvNeXt's (320 ch): 1x1 projector."""
    student = SmpEncoder(TINY_TU)
    frozen = ConvNeXtEncoder("atto").eval().requires_grad_(False)
    loss_fn = FeatureAlignmentLoss(margin=0.85, projector=True, student_channels=student.out_channels[-1],
                                   frozen_channels=frozen.out_channels[-1])
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        target = frozen(x).features[-1]
    loss = loss_fn(student(x).features[-1], target)
    assert torch.isfinite(loss) and 0 <= loss.item() <= 2
    loss.backward()
    assert loss_fn.projector.weight.grad is not None and loss_fn.projector.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


@pytest.mark.slow  # dynamo export: ~10-30 s each on the shared machine
@pytest.mark.parametrize("arch", ["unet", "fpn"])
def test_onnx_export_with_onnxruntime_parity(arch: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from da_toolkit.inference.export import check_onnx, export_onnx

    model = _perturbed(_model(arch)).eval()
    path = export_onnx(model, tmp_path / f"{arch}.onnx")
    results = check_onnx(model, path)  # other batch / height / width than the traced ones
    assert len(results) == 2
    for r in results:
        assert r.max_abs_diff <= 1e-4 * max(r.max_abs_output, 1.0), r
