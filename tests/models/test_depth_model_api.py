"""DepthModel, its description as data and presets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from da_toolkit.models import (
    PRESETS,
    DepthModel,
    ModelDescriptionError,
    build_model,
    build_tiny_model,
    describe_model,
    expand_model,
    load_model,
    preset_description,
)
from da_toolkit.models.preprocess import prepare_image, upsample_prediction


def test_forward_and_features() -> None:
    model = build_tiny_model().eval()
    x = torch.randn(2, 3, 42, 56)
    y, enc = model(x, return_features=True)
    assert y.shape == (2, 42, 56)
    assert len(enc.features) == 4 and enc.features[-1].shape == (2, 32, 3, 4)
    torch.testing.assert_close(model(x), y)


def test_infer_image_is_official_pipeline() -> None:
    model = build_tiny_model().eval()
    rgb = np.random.default_rng(0).integers(0, 256, size=(30, 45, 3), dtype=np.uint8)
    out = model.infer_image(rgb, input_size=42)
    assert out.shape == (30, 45) and out.dtype == np.float32
    x = prepare_image(rgb, 42)
    assert x.shape == (1, 3, 42, 56)  # 45*42/30 = 63 = 4.5*14: numpy rounds half to even -> 4*14
    with torch.no_grad():
        ref = upsample_prediction(model(x), (30, 45))[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        model.infer_image(rgb.astype(np.float32))


def test_description_round_trip_rebuilds_same_architecture() -> None:
    model = build_tiny_model(max_depth=80.0)
    again = json.loads(json.dumps(describe_model(model)))
    rebuilt = build_model(again)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert rebuilt.output_kind == "metric" and rebuilt.max_depth == 80.0


EXPECTED = {
    **{f"depth-anything-v1-{s}": (None, "Apache-2.0") for s in ("vits", "vitb", "vitl")},
    "depth-anything-v2-vits": (None, "Apache-2.0"),
    **{f"depth-anything-v2-{s}": (None, "CC-BY-NC-4.0") for s in ("vitb", "vitl", "vitg")},
    # upstream states no licence for the metric checkpoints (preset_table.py cites it): Small
    # records NOASSERTION, Base/Large are fine-tunes of the CC-BY-NC-4.0 weights
    **{f"depth-anything-v2-metric-{d}-{s}": (m, "NOASSERTION" if s == "vits" else "CC-BY-NC-4.0")
       for d, m in (("hypersim", 20.0), ("vkitti", 80.0)) for s in ("vits", "vitb", "vitl")},
}


def test_presets_table() -> None:
    assert set(EXPECTED) <= set(PRESETS)
    for name, (max_depth, licence) in EXPECTED.items():
        p = PRESETS[name]
        assert p.max_depth == max_depth and p.output_kind == ("disparity" if max_depth is None else "metric"), name
        assert p.licence == licence, name
        # the description carries the licence and the preset name into every model built from it
        assert p.model["init_args"]["licence"] == licence and p.model["init_args"]["origin"] == name, name

    def enc(name: str) -> dict:
        return PRESETS[name].model["init_args"]["encoder"]["init_args"]

    assert enc("depth-anything-v1-vitl")["layer_indices"] == [20, 21, 22, 23]
    assert enc("depth-anything-v2-vitl")["layer_indices"] == [4, 11, 17, 23]
    assert enc("depth-anything-v2-vitg")["swiglu"] is True


@pytest.mark.parametrize(
    ("name", "millions"),
    [("depth-anything-v2-vits", 24.8), ("depth-anything-v2-vitb", 97.5),
     ("depth-anything-v2-vitl", 335.3), ("depth-anything-v2-vitg", 1300.0)],
)
def test_parameter_counts_match_paper(name: str, millions: float) -> None:
    with torch.device("meta"):  # no memory, no init cost
        model = build_model(preset_description(name))
    n = sum(p.numel() for p in model.parameters()) / 1e6
    if name.endswith("vitg"):  # the paper says "1.3B"
        assert round(n / 1000, 1) == 1.3, n
    else:  # the paper rounds to 0.1M
        assert round(n, 1) == millions, (name, n)


def test_load_model_errors_and_overrides() -> None:
    with pytest.raises(FileNotFoundError, match="depth-anything-v2-vits"):
        load_model("depth-anything-v9")
    with pytest.raises(ModelDescriptionError, match="unknown model override 'colour'"):
        load_model("tiny", colour=1)
    m = load_model("tiny", depth=3, layer_indices=[0, 1, 2, 2], max_depth=10.0)
    assert isinstance(m, DepthModel) and not m.training
    assert len(m.encoder.blocks) == 3 and m.output_kind == "metric"


def test_recipe_instantiation_with_jsonargparse(tmp_path) -> None:
    """Recipes build models by class_path: explicit parts, and presets expanded to that form."""
    from jsonargparse import ArgumentParser

    from da_toolkit.models.weights import save_weights

    parser = ArgumentParser()
    parser.add_argument("--model", type=DepthModel)
    explicit = {
        "class_path": "da_toolkit.models.DepthModel",
        "init_args": {
            "encoder": {"class_path": "da_toolkit.models.encoders.DINOv2Encoder",
                        "init_args": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 56}},
            "decoder": {"class_path": "da_toolkit.models.decoders.DPTDecoder",
                        "init_args": {"features": 16, "out_channels": [8, 16, 32, 32], "max_depth": 10.0}},
        },
    }
    model = parser.instantiate(parser.parse_object({"model": explicit})).model
    assert isinstance(model, DepthModel) and model.output_kind == "metric"
    assert model(torch.randn(1, 3, 28, 28)).shape == (1, 28, 28)

    src = build_tiny_model()
    save_weights(src, tmp_path / "w.safetensors")
    # a preset with weights, expanded to the canonical form jsonargparse parses (dotted class paths)
    from da_toolkit.models.description import resolve_description

    preset = resolve_description(expand_model({"preset": "tiny", "weights": str(tmp_path / "w.safetensors")}))
    model = parser.instantiate(parser.parse_object({"model": preset})).model
    assert isinstance(model, DepthModel) and model.weights_loaded
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    enc_only = build_model({"preset": "tiny", "encoder_weights": str(tmp_path / "w.safetensors"),
                            "decoder": {"max_depth": 20.0}})
    assert enc_only.output_kind == "metric"
    assert torch.equal(enc_only.encoder.blocks[0].attn.qkv.weight, src.encoder.blocks[0].attn.qkv.weight)
