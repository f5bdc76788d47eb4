"""SmpEncoder: any smp encoder (``tu-`` timm ones included) as a toolkit pyramid, local weights only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

smp = pytest.importorskip("segmentation_models_pytorch")
timm = pytest.importorskip("timm")

from safetensors.torch import save_file

from da_toolkit.models.encoders import BUILTIN_ENCODERS
from da_toolkit.models.encoders.smp_encoder import SmpEncoder
from da_toolkit.models.weights.errors import WeightsMismatchError

TINY_TU = "tu-mobilenetv3_small_050"  # 0.27 M parameters, builds in ~0.1 s


def test_registered_as_smp() -> None:
    assert BUILTIN_ENCODERS["smp_encoder"] is SmpEncoder


@pytest.mark.parametrize(
    ("name", "channels"),
    [
        (TINY_TU, [8, 16, 24, 288]),
        ("resnet18", [64, 128, 256, 512]),
        ("tu-convnext_atto", [40, 80, 160, 320]),  # stage 1 is smp's zero-channel placeholder
    ],
)
def test_default_pyramid_is_four_levels_at_strides_4_to_32(name: str, channels: list[int]) -> None:
    enc = SmpEncoder(name)
    assert enc.out_channels == channels
    assert enc.reductions == [4, 8, 16, 32] and enc.patch_size is None
    out = enc(torch.randn(2, 3, 64, 96))
    assert out.cls_tokens is None
    assert [tuple(f.shape) for f in out.features] == [
        (2, c, 64 // r, 96 // r) for c, r in zip(channels, enc.reductions)
    ]


def test_tu_features_equal_timm_features_only_model() -> None:
    """Independent reference: timm's own features_only model with the same tensors."""
    enc = SmpEncoder(TINY_TU, levels=[1, 2, 3, 4, 5]).eval()
    ref = timm.create_model("mobilenetv3_small_050", features_only=True, pretrained=False).eval()
    ref.load_state_dict({k.removeprefix("model."): v for k, v in enc.body.state_dict().items()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = enc(x).features, ref(x)
    assert enc.reductions == [2, 4, 8, 16, 32]
    assert len(ours) == len(theirs) == 5
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)


def test_dilated_encoder_reductions() -> None:
    enc = SmpEncoder("resnet18", output_stride=16)
    assert enc.reductions == [4, 8, 16, 16]
    shapes = [tuple(f.shape[-2:]) for f in enc(torch.randn(1, 3, 64, 64)).features]
    assert shapes == [(16, 16), (8, 8), (4, 4), (4, 4)]


def test_bad_levels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"stages \[1\] are zero-channel placeholders"):
        SmpEncoder("tu-convnext_atto", levels=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="strictly increasing"):
        SmpEncoder(TINY_TU, levels=[3, 2])
    with pytest.raises(ValueError, match="unknown smp encoder 'resnet_nope'"):
        SmpEncoder("resnet_nope")


@pytest.mark.parametrize("in_channels", [1, 4])
def test_other_input_channels_pass_through(in_channels: int) -> None:
    enc = SmpEncoder(TINY_TU, in_channels=in_channels)
    x = torch.randn(2, in_channels, 64, 64, requires_grad=True)
    feats = enc(x).features
    sum(f.mean() for f in feats).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=rf"expected input of shape \(B,{in_channels},H,W\).*3-channel RGB"):
        enc(torch.randn(1, 3, 64, 64))


# ------------------------------------------------------------------ weights: local files only


@pytest.mark.parametrize("weights", ["imagenet", "ssl", "swsl", "advprop"])
def test_download_names_are_refused_with_a_clear_error(weights: str, no_downloads: None) -> None:
    with pytest.raises(ValueError, match=rf"weights='{weights}' looks like an smp/timm pretrained-weights name"):
        SmpEncoder("resnet18", weights=weights)


def test_non_path_weights_and_missing_files(no_downloads: None, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="must be a path to a local weights file"):
        SmpEncoder("resnet18", weights=True)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        SmpEncoder("resnet18", weights=str(tmp_path / "nope.safetensors"))


def test_the_download_guard_would_catch_a_download(no_downloads: type[Exception]) -> None:
    """The fixture (tests/conftest.py) is effective: smp's own 'imagenet' path (not ours) hits it."""
    with pytest.raises(no_downloads):
        smp.encoders.get_encoder("resnet18", weights="imagenet")
    with pytest.raises(no_downloads):
        smp.encoders.get_encoder("tu-mobilenetv3_small_050", weights=True)


def test_timm_checkpoint_of_a_tu_backbone_loads(tmp_path: Path) -> None:
    full = timm.create_model("mobilenetv3_small_050", pretrained=False)  # with classifier head
    path = tmp_path / "mbv3.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    enc = SmpEncoder(TINY_TU, weights=str(path)).eval()
    ref = timm.create_model(
        "mobilenetv3_small_050", features_only=True, out_indices=(1, 2, 3, 4), pretrained=True,
        pretrained_cfg_overlay={"file": str(path)},
    ).eval()  # timm's own loader of a local file: the reference
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(enc(x).features, ref(x)):
            torch.testing.assert_close(a, b)
    assert enc.init_args["weights"] is None  # a saved model carries the tensors


def test_encoder_of_a_trained_smp_model_loads_from_a_lightning_style_checkpoint(tmp_path: Path) -> None:
    unet = smp.Unet("resnet18", encoder_weights=None, classes=2)
    path = tmp_path / "skin_unet.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in unet.state_dict().items()}, "epoch": 3}, path)
    enc = SmpEncoder("resnet18", weights=str(path))
    want = unet.encoder.state_dict()
    got = enc.body.state_dict()
    assert set(got) == set(want)
    for k in want:
        torch.testing.assert_close(got[k], want[k])


@pytest.mark.parametrize("in_channels", [1, 4])
def test_rgb_first_conv_is_adapted_with_smps_rule(in_channels: int, tmp_path: Path) -> None:
    src = SmpEncoder("resnet18")
    path = tmp_path / "rgb.safetensors"
    save_file({k: v.contiguous() for k, v in src.body.state_dict().items()}, str(path))
    enc = SmpEncoder("resnet18", in_channels=in_channels, weights=str(path))
    rgb = src.body.conv1.weight.detach()
    got = enc.body.conv1.weight.detach()
    assert got.shape == (64, in_channels, 7, 7)
    if in_channels == 1:
        expected = rgb[:, 0:1] + rgb[:, 1:2] + rgb[:, 2:3]
    else:  # channels R, G, B, R, each scaled by 3/4
        expected = torch.cat([rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3], rgb[:, 0:1]], dim=1) * 0.75
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(enc.body.layer1[0].conv1.weight, src.body.layer1[0].conv1.weight)


def test_weights_of_another_encoder_are_refused_naming_the_file(tmp_path: Path) -> None:
    other = SmpEncoder(TINY_TU)
    path = tmp_path / "mbv3.safetensors"
    save_file({k: v.contiguous() for k, v in other.body.state_dict().items()}, str(path))
    with pytest.raises(WeightsMismatchError, match=r"(?s)mbv3\.safetensors do not fit the model.*missing keys"):
        SmpEncoder("resnet18", weights=str(path))


def test_nothing_downloads_building_every_tested_variant(no_downloads: None) -> None:
    """Every encoder name and every decoder architecture used in these tests builds offline."""
    from da_toolkit.models import DepthModel
    from da_toolkit.models.decoders.smp_decoder import SMP_ARCHITECTURES, SmpDecoder

    for name in (TINY_TU, "resnet18", "efficientnet-b0", "tu-convnext_atto"):
        SmpEncoder(name)
    for arch in SMP_ARCHITECTURES:
        enc = SmpEncoder(TINY_TU, output_stride=16 if arch == "deeplabv3plus" else 32)
        DepthModel(enc, SmpDecoder(arch))


def test_rgb_pipeline_refuses_a_one_channel_model_with_the_shape_error() -> None:
    """The inference core feeds 3-channel RGB: a grayscale model fails clearly, not silently."""
    from da_toolkit.models import DepthModel
    from da_toolkit.models.decoders.smp_decoder import SmpDecoder
    from da_toolkit.models.inference_core import predict_tensor

    model = DepthModel(SmpEncoder(TINY_TU, in_channels=1), SmpDecoder("unet")).eval()
    with pytest.raises(ValueError, match=r"expected input of shape \(B,1,H,W\), got \(1, 3, 64, 64\)"):
        predict_tensor(model, torch.rand(1, 3, 64, 64))
