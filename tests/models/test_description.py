"""The one model description: init_args capture, describe/build round trips, parser errors,
self-describing files and the file's head winning (issues 11, 14.2, 19.1, 19.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from da_toolkit.models import (
    CHECKPOINT_KEY,
    PRESETS,
    DepthModel,
    ModelDescriptionError,
    build_model,
    build_tiny_model,
    describe_model,
    expand_model,
    load_model,
    model_from_weights,
    preset_description,
)
from da_toolkit.models.decoders import DPTDecoder
from da_toolkit.models.encoders import (
    ConvNeXtEncoder,
    DINOv2Encoder,
    Encoder,
    EncoderOutput,
    TimmEncoder,
)
from da_toolkit.models.weights import (
    HeadMismatchError,
    WeightsError,
    read_weights,
    save_weights,
)


class ToyEncoder(Encoder):
    """A throwaway third-party encoder: a 4-level strided-conv pyramid (strides 2, 4, 8, 16)."""

    def __init__(self, width: int = 4, levels: tuple[int, ...] = (1, 2, 3, 4), note: str | None = None) -> None:
        super().__init__()
        self.out_channels = [width * lv for lv in levels]
        self.reductions = [2**lv for lv in levels]
        chans = [3, *self.out_channels]
        self.stages = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], kernel_size=3, stride=2, padding=1) for i in range(len(levels))
        )

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        self.check_input(x)
        feats = []
        for stage in self.stages:
            x = torch.relu(stage(x))
            feats.append(x)
        return EncoderOutput(feats, None)


class ToySubclass(ToyEncoder):
    """No constructor of its own: records the parent's arguments under its own class path."""


class ToyFixedWidth(ToyEncoder):
    """Calls the parent's constructor with other arguments: only its own arguments are recorded."""

    def __init__(self, depth_levels: int = 4, **extra: int) -> None:
        super().__init__(width=8, levels=tuple(range(1, depth_levels + 1)))


def _same_outputs(a: DepthModel, b: DepthModel, side: int) -> None:
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a.eval()(x), b.eval()(x), rtol=0, atol=0)


def _perturbed(model: DepthModel, seed: int = 0) -> DepthModel:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


# ------------------------------------------------------------------ init_args capture (14.2)


def test_init_args_are_captured_with_defaults_and_json_friendly() -> None:
    enc = DINOv2Encoder(embed_dim=32, depth=2, num_heads=2, img_size=28, layer_indices=(0, 1, 1, 1))
    assert enc.init_args == {"embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 4.0, "swiglu": False,
                             "patch_size": 14, "img_size": 28, "layer_indices": [0, 1, 1, 1],
                             "layerscale_init": 1.0}
    dec = DPTDecoder(16, (8, 8, 8, 8), max_depth=5)
    assert dec.init_args["out_channels"] == [8, 8, 8, 8] and dec.init_args["max_depth"] == 5
    json.dumps(enc.init_args), json.dumps(dec.init_args)
    model = DepthModel(enc, dec, upsample_align_corners=False)
    assert json.loads(json.dumps(model.init_args))["encoder"] == {
        "class_path": "da_toolkit.models.encoders.dinov2.DINOv2Encoder", "init_args": enc.init_args}
    assert model.init_args["upsample_align_corners"] is False and model.init_args["weights"] is None


def test_outermost_constructor_records_and_subclasses_without_init_inherit() -> None:
    assert ConvNeXtEncoder("atto").init_args == {"variant": "atto", "weights": None}
    assert ToySubclass(width=2).init_args == {"width": 2, "levels": [1, 2, 3, 4], "note": None}
    fixed = ToyFixedWidth(3, extra_flag=1)
    assert fixed.init_args == {"depth_levels": 3, "extra_flag": 1}
    assert fixed.out_channels == [8, 16, 24]


def test_transient_weights_argument_is_not_recorded(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    ckpt = tmp_path / "resnet18.safetensors"
    from safetensors.torch import save_file

    body = timm.create_model("resnet18", features_only=True, out_indices=(1, 2, 3, 4), pretrained=False)
    save_file({k: v.contiguous() for k, v in body.state_dict().items()}, ckpt)
    enc = TimmEncoder("resnet18", weights=str(ckpt))
    assert enc.init_args == {"name": "resnet18", "out_indices": [1, 2, 3, 4], "weights": None}


def test_local_classes_cannot_be_described() -> None:
    class Local(ToyEncoder):
        pass

    model = DepthModel(Local(), DPTDecoder(8, (4, 4, 4, 4)))
    with pytest.raises(ModelDescriptionError, match="inside a function"):
        describe_model(model)


# ------------------------------------------------------------------ describe / build round trips


def test_dinov2_tiny_round_trip() -> None:
    model = _perturbed(build_tiny_model())
    desc = describe_model(model)
    assert desc["class_path"] == "da_toolkit.models.depth_model.DepthModel"
    assert desc["init_args"]["encoder"]["class_path"] == "da_toolkit.models.encoders.dinov2.DINOv2Encoder"
    assert desc["init_args"]["weights"] is None and desc["init_args"]["encoder_weights"] is None
    assert json.loads(json.dumps(desc)) == desc
    rebuilt = build_model(desc)
    assert describe_model(rebuilt) == desc
    assert not rebuilt.weights_loaded
    rebuilt.load_state_dict(model.state_dict())
    _same_outputs(model, rebuilt, 28)


@pytest.mark.parametrize("encoder", ["convnext", "timm"])
def test_cnn_encoder_round_trip(encoder: str) -> None:
    pytest.importorskip("timm")
    enc = ConvNeXtEncoder("atto") if encoder == "convnext" else TimmEncoder("resnet18")
    model = _perturbed(DepthModel(enc, DPTDecoder(16, (8, 16, 32, 32)), upsample_align_corners=False))
    assert model.input_multiple == 32 and model.patch_size is None
    desc = describe_model(model)
    assert desc["init_args"]["upsample_align_corners"] is False
    rebuilt = build_model(json.loads(json.dumps(desc)))
    assert type(rebuilt.encoder) is type(enc) and rebuilt.upsample_align_corners is False
    rebuilt.load_state_dict(model.state_dict())
    _same_outputs(model, rebuilt, 64)


def test_third_party_encoder_round_trip_through_a_file(tmp_path: Path) -> None:
    model = _perturbed(DepthModel(ToyEncoder(width=4), DPTDecoder(8, (4, 8, 8, 8))))
    assert model.input_multiple == 16
    desc = describe_model(model)
    assert desc["init_args"]["encoder"]["class_path"].endswith(".ToyEncoder")
    assert desc["init_args"]["encoder"]["init_args"] == {"width": 4, "levels": [1, 2, 3, 4], "note": None}
    path = tmp_path / "toy.safetensors"
    save_weights(model, path)
    again = load_model(path)
    assert isinstance(again.encoder, ToyEncoder) and again.weights_loaded and not again.training
    _same_outputs(model, again, 32)


def test_presets_are_descriptions_with_the_release_upsampling() -> None:
    for name, preset in PRESETS.items():
        desc = preset_description(name)
        assert desc == preset.model and desc is not preset.model
        align = desc["init_args"]["upsample_align_corners"]
        # official V1 run.py: align_corners=False; V2 infer_image: True
        assert align is (not name.startswith("depth-anything-v1")), name
    tiny = build_model("tiny")
    assert tiny.upsample_align_corners is True and tiny.input_multiple == 14
    with torch.device("meta"):
        v1 = build_model("depth-anything-v1-vits")
    assert v1.upsample_align_corners is False
    assert describe_model(v1)["init_args"]["upsample_align_corners"] is False


def test_expand_model_short_forms() -> None:
    assert expand_model("tiny") == preset_description("tiny")
    desc = expand_model({"preset": "tiny", "weights": "w.safetensors", "encoder": {"depth": 3},
                         "decoder": {"init_args": {"max_depth": 10.0}}})
    init = desc["init_args"]
    assert init["weights"] == "w.safetensors" and init["encoder"]["init_args"]["depth"] == 3
    assert init["encoder"]["init_args"]["embed_dim"] == 32 and init["decoder"]["init_args"]["max_depth"] == 10.0
    swapped = expand_model({"preset": "tiny", "encoder": {"class_path": "convnext", "init_args": {"variant": "atto"}}})
    assert swapped["init_args"]["encoder"] == {"class_path": "convnext", "init_args": {"variant": "atto"}}
    canonical = describe_model(build_tiny_model())
    assert expand_model(canonical) == canonical
    with pytest.raises(ModelDescriptionError, match=r"model\.weigths: not a key"):
        expand_model({"preset": "tiny", "weigths": "x"})
    with pytest.raises(ModelDescriptionError, match="unknown model preset 'tinyy'"):
        expand_model("tinyy")
    with pytest.raises(ModelDescriptionError, match=r"model\.init_args\.decoder: needs a 'class_path'"):
        expand_model({"class_path": "DepthModel", "init_args": {"encoder": {"class_path": "dinov2"}}})


# ------------------------------------------------------------------ parser errors name the key


def test_misspelled_encoder_argument_is_a_parser_error_naming_it() -> None:
    desc = preset_description("tiny")
    desc["init_args"]["encoder"]["init_args"]["embed_dimm"] = 32
    with pytest.raises(ModelDescriptionError, match=r"^model\.encoder\.embed_dimm: not an argument of DINOv2Encoder$"):
        build_model(desc)
    bad = expand_model({"preset": "tiny", "encoder": {"class_path": "convnext", "init_args": {"varient": "atto"}}})
    with pytest.raises(ModelDescriptionError, match=r"model\.encoder\.varient: not an argument of ConvNeXtEncoder"):
        build_model(bad)


def test_mistyped_and_unknown_components_name_the_key() -> None:
    desc = preset_description("tiny")
    desc["init_args"]["decoder"]["init_args"]["features"] = "wide"
    with pytest.raises(ModelDescriptionError, match=r"^model\.decoder\.features: .*int.*wide"):
        build_model(desc)
    desc = preset_description("tiny")
    desc["init_args"]["encoder"]["class_path"] = "dinov3"
    with pytest.raises(ModelDescriptionError, match=r"model\.init_args\.encoder\.class_path: .*'dinov3'.*dinov2"):
        build_model(desc)
    desc["init_args"]["encoder"]["class_path"] = "torch.nn.Linear"
    with pytest.raises(ModelDescriptionError, match="not a subclass of Encoder"):
        build_model(desc)
    desc["init_args"]["encoder"]["class_path"] = "nowhere_pkg.Enc"
    with pytest.raises(ModelDescriptionError, match="cannot import 'nowhere_pkg.Enc'.*installed"):
        build_model(desc)


def test_load_model_overrides_are_typed_and_unknown_names_fail() -> None:
    m = load_model("tiny", depth=3, layer_indices=[0, 1, 2, 2], max_depth=10.0, upsample_align_corners=False)
    assert len(m.encoder.blocks) == 3 and m.output_kind == "metric" and m.upsample_align_corners is False
    assert not m.training and not m.weights_loaded
    with pytest.raises(ModelDescriptionError, match="unknown model override 'colour'"):
        load_model("tiny", colour=1)
    with pytest.raises(ModelDescriptionError, match=r"model\.encoder\.depth: .*int"):
        load_model("tiny", depth="three")
    with pytest.raises(FileNotFoundError, match="neither a model preset .*depth-anything-v2-vits"):
        load_model("depth-anything-v9")


# ------------------------------------------------------------------ self-describing files, heads


def _metric_source(max_depth: float = 10.0) -> DepthModel:
    torch.manual_seed(0)
    model = _perturbed(build_tiny_model(max_depth=max_depth))
    with torch.no_grad():  # spread the logits so the Sigmoid head is not saturated
        model.decoder.scratch.output_conv2[2].weight.mul_(20.0)
    return model.eval()


def _write_task_ckpt(model: DepthModel, path: Path, **extra: object) -> None:
    """What a task's on_save_checkpoint writes: Lightning state_dict + our description."""
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                CHECKPOINT_KEY: describe_model(model), "epoch": 1, **extra}, path)


@pytest.mark.parametrize("fmt", ["safetensors", "ckpt"])
def test_metric_head_round_trip_gives_metres_through_every_entry_point(tmp_path: Path, fmt: str) -> None:
    src = _metric_source(10.0)
    path = tmp_path / f"metric.{fmt}"
    if fmt == "safetensors":
        save_weights(src, path)
    else:
        _write_task_ckpt(src, path)
    assert read_weights(path).description == describe_model(src)
    x = torch.rand(2, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = src(x)
    assert expected.std() > 0.1  # a real spread of depths, not a constant map
    built = [load_model(path), model_from_weights(path)[0],
             load_model("tiny", weights=path),  # the preset says relative: the file's head wins
             load_model("tiny", weights=path, max_depth=10.0)]
    for model in built:
        assert model.output_kind == "metric" and model.max_depth == 10.0 and model.weights_loaded
        with torch.no_grad():
            out = model(x)
        assert float(out.min()) > 0.0 and float(out.max()) < 10.0
        torch.testing.assert_close(out, expected, rtol=0, atol=0)
    with pytest.raises(HeadMismatchError, match=f"metric.{fmt}.*max_depth 10.0.*max_depth=5"):
        load_model("tiny", weights=path, max_depth=5.0)
    with pytest.raises(HeadMismatchError, match=f"metric.{fmt}: the file records a metric head"):
        DepthModel(DINOv2Encoder(**src.encoder.init_args), DPTDecoder(16, (8, 16, 32, 32)), weights=str(path))


def test_relative_file_refuses_a_metric_model(tmp_path: Path) -> None:
    src = build_tiny_model()
    path = tmp_path / "rel.safetensors"
    save_weights(src, path)
    with pytest.raises(HeadMismatchError, match="rel.safetensors: the file records a relative"):
        build_tiny_model(max_depth=20.0).load_weights(path)
    assert load_model("depth-anything-v2-metric-hypersim-vits", weights=path, depth=2, embed_dim=32, num_heads=2,
                      img_size=56, layer_indices=[0, 0, 1, 1], features=16,
                      out_channels=[8, 16, 32, 32]).output_kind == "disparity"


def test_checkpoint_without_description_is_refused_not_guessed(tmp_path: Path) -> None:
    """Old-format task checkpoints (hyper-parameters preset/model_overrides) are not read."""
    src = build_tiny_model()
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()},
                "hyper_parameters": {"preset": "tiny", "model_overrides": {}}}, path)
    with pytest.raises(WeightsError, match="old.ckpt: this checkpoint records no model description.*re-save"):
        load_model(path)
    assert load_model("tiny", weights=path).weights_loaded  # with the preset named it loads
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}, CHECKPOINT_KEY: {"x": 1}}, bad)
    with pytest.raises(WeightsError, match="bad.ckpt: da_toolkit_model: missing 'class_path'"):
        read_weights(bad)


def test_weights_and_encoder_weights_in_the_description(tmp_path: Path) -> None:
    src = _perturbed(build_tiny_model())
    path = tmp_path / "w.safetensors"
    save_weights(src, path)
    model = build_model({"preset": "tiny", "weights": str(path)})
    assert model.weights_loaded and model.training
    _same_outputs(src, model, 28)
    enc_only = build_model({"preset": "tiny", "encoder_weights": str(path), "decoder": {"max_depth": 20.0}})
    assert not enc_only.weights_loaded and enc_only.output_kind == "metric"
    assert torch.equal(enc_only.encoder.blocks[0].attn.qkv.weight, src.encoder.blocks[0].attn.qkv.weight)


def test_weights_loaded_follows_full_state_dict_loads() -> None:
    src = build_tiny_model()
    target = build_tiny_model()
    assert not target.weights_loaded
    target.encoder.load_state_dict(src.encoder.state_dict())
    assert not target.weights_loaded  # encoder only
    holder = nn.Module()
    holder.model = target
    holder.load_state_dict({f"model.{k}": v for k, v in src.state_dict().items()})  # e.g. Lightning restore
    assert target.weights_loaded


def test_hf_folder_rebuilds_alone(tmp_path: Path) -> None:
    from da_toolkit.models.weights import save_hf_folder

    src = _perturbed(build_tiny_model(depth=4, layer_indices=[0, 1, 2, 3]))
    save_hf_folder(src, tmp_path / "hf")
    again = load_model(tmp_path / "hf")
    assert again.weights_loaded and describe_model(again)["init_args"]["encoder"] == describe_model(src)["init_args"]["encoder"]
    _same_outputs(src, again, 28)
