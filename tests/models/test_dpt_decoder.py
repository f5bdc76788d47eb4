"""DPT decoder: blocks against hand computations, ViT and CNN inputs, heads, options, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from da_toolkit.models import DepthModel, build_tiny_model
from da_toolkit.models.decoders import DPTDecoder
from da_toolkit.models.decoders.blocks import FusionBlock, ResidualConvUnit
from da_toolkit.models.encoders import ConvNeXtEncoder, EncoderOutput, TimmEncoder


def test_residual_conv_unit_formula() -> None:
    torch.manual_seed(0)
    rcu = ResidualConvUnit(4)
    x = torch.randn(1, 4, 5, 6)
    ref = x + F.conv2d(F.relu(F.conv2d(F.relu(x), rcu.conv1.weight, rcu.conv1.bias, padding=1)),
                       rcu.conv2.weight, rcu.conv2.bias, padding=1)
    torch.testing.assert_close(rcu(x), ref)


def test_fusion_block_skip_resize_and_projection() -> None:
    torch.manual_seed(0)
    fb = FusionBlock(4)
    x, skip = torch.randn(1, 4, 3, 5), torch.randn(1, 4, 3, 5)
    y = fb.resConfUnit2(x + fb.resConfUnit1(skip))
    ref = fb.out_conv(F.interpolate(y, size=(7, 9), mode="bilinear", align_corners=True))
    torch.testing.assert_close(fb(x, skip, size=(7, 9)), ref)
    assert fb(x).shape == (1, 4, 6, 10)  # no size: x2


def test_vit_levels_and_output_shape() -> None:
    model = build_tiny_model()
    dec = model.decoder
    assert isinstance(dec.resize_layers[0], nn.ConvTranspose2d) and dec.resize_layers[0].stride == (4, 4)
    assert isinstance(dec.resize_layers[1], nn.ConvTranspose2d) and dec.resize_layers[1].stride == (2, 2)
    assert isinstance(dec.resize_layers[2], nn.Identity)
    assert isinstance(dec.resize_layers[3], nn.Conv2d) and dec.resize_layers[3].stride == (2, 2)
    assert dec.scratch.layer1_rn.bias is None  # 3x3 conv without bias
    x = torch.randn(2, 3, 56, 42)
    y = model(x)
    assert y.shape == (2, 56, 42) and (y >= 0).all()
    assert model.output_kind == "disparity" and model.max_depth is None


def test_metric_head_is_sigmoid_times_max_depth_of_the_same_logits() -> None:
    torch.manual_seed(0)
    rel = build_tiny_model()
    met = build_tiny_model(max_depth=20.0)
    met.load_state_dict(rel.state_dict())  # identical parameters, only the activation differs
    with torch.no_grad():
        nn.init.constant_(rel.decoder.scratch.output_conv2[2].bias, 0.3)
        nn.init.constant_(met.decoder.scratch.output_conv2[2].bias, 0.3)
    x = torch.randn(2, 3, 42, 42)
    with torch.no_grad():
        r, m = rel.eval()(x), met.eval()(x)
    assert met.output_kind == "metric" and met.max_depth == 20.0
    assert (m > 0).all() and (m < 20).all()
    pos = r > 0  # there the ReLU output is the logit itself
    assert pos.any()
    torch.testing.assert_close(m[pos], torch.sigmoid(r[pos]) * 20.0)


def test_max_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        DPTDecoder(max_depth=0.0)


def test_cnn_pyramid_with_convnext_and_odd_sizes() -> None:
    enc = ConvNeXtEncoder("atto")
    assert enc.reductions == [4, 8, 16, 32] and enc.patch_size is None
    model = DepthModel(enc, DPTDecoder(features=16, out_channels=(16, 16, 32, 32)))
    assert all(isinstance(r, nn.Identity) for r in model.decoder.resize_layers)
    for size in [(64, 96), (70, 90)]:
        y = model(torch.randn(1, 3, *size))
        assert y.shape == (1, *size)


def test_generic_timm_encoder() -> None:
    enc = TimmEncoder("resnet18", out_indices=(1, 2, 3, 4))
    out = enc(torch.randn(1, 3, 64, 64))
    assert out.cls_tokens is None
    assert [f.shape[1] for f in out.features] == enc.out_channels == [64, 128, 256, 512]
    assert [64 // f.shape[-1] for f in out.features] == enc.reductions
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        TimmEncoder("resnet18", weights="missing.pth")


def test_clstoken_readout_and_batch_norm_options() -> None:
    model = build_tiny_model(use_clstoken=True, use_bn=True)
    keys = model.state_dict().keys()
    assert "decoder.readout_projects.0.0.weight" in keys
    assert "decoder.scratch.refinenet1.resConfUnit1.bn1.running_mean" in keys
    model.eval()
    x = torch.randn(1, 3, 28, 28)
    out = model(x)
    # the readout depends on the class token: changing it changes the output
    enc = model.encoder(x)
    changed = EncoderOutput(enc.features, [c + 1.0 for c in enc.cls_tokens])
    assert not torch.allclose(model.decoder(changed, (28, 28)), out)
    with pytest.raises(ValueError, match="class tokens"):
        model.decoder(EncoderOutput(enc.features, None), (28, 28))


def test_decoder_checks_encoder_channels() -> None:
    dec = DPTDecoder(features=16, out_channels=(8, 16, 32, 32), in_channels=(64, 64, 64, 64))
    with pytest.raises(ValueError, match="encoder channels"):
        DepthModel(build_tiny_model().encoder, dec)
    with pytest.raises(RuntimeError, match="no layers yet"):
        DPTDecoder()(EncoderOutput([torch.zeros(1, 4, 2, 2)] * 4, None), (28, 28))


def test_convnext_local_weights_and_unknown_variant(tmp_path) -> None:
    import timm
    from safetensors.torch import save_file

    full = timm.create_model("convnext_atto", pretrained=False)  # a classifier checkpoint
    with torch.no_grad():
        full.stem[0].weight.add_(1.0)
    path = tmp_path / "convnext_atto.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, path)
    enc = ConvNeXtEncoder("atto", weights=str(path))
    assert torch.equal(enc.body.stem_0.weight, full.stem[0].weight)
    assert enc.init_args["weights"] is None  # saved models carry weights in their state dict
    with pytest.raises(ValueError, match="convnext_hyper"):
        ConvNeXtEncoder("hyper")
