"""Hugging Face config.json <-> our model description, against Hub-style configs written out by hand."""

from __future__ import annotations

import pytest

from da_toolkit.models import PRESETS, preset_description, with_overrides
from da_toolkit.models.hf_config import (
    description_to_hf_config,
    hf_config_to_description,
)

# The shape of the Hub's LiheYoung/depth-anything-small-hf config.json (V1, last four blocks).
V1_SMALL_HUB = {
    "architectures": ["DepthAnythingForDepthEstimation"],
    "backbone_config": {
        "architectures": ["Dinov2Model"], "hidden_size": 384, "image_size": 518, "model_type": "dinov2",
        "num_attention_heads": 6, "out_features": ["stage9", "stage10", "stage11", "stage12"],
        "out_indices": [9, 10, 11, 12], "patch_size": 14, "reshape_hidden_states": False,
    },
    "fusion_hidden_size": 64, "head_hidden_size": 32, "head_in_index": -1, "model_type": "depth_anything",
    "neck_hidden_sizes": [48, 96, 192, 384], "patch_size": 14, "reassemble_factors": [4, 2, 1, 0.5],
    "reassemble_hidden_size": 384, "torch_dtype": "float32",
}


def _core(desc) -> tuple:
    init = desc["init_args"]
    e, d = init["encoder"]["init_args"], init["decoder"]["init_args"]
    return (e["embed_dim"], e["depth"], e["num_heads"], bool(e.get("swiglu", False)), list(e["layer_indices"]),
            d["features"], list(d["out_channels"]), d["max_depth"])


def test_v1_small_hub_config_is_the_v1_preset() -> None:
    assert _core(hf_config_to_description(V1_SMALL_HUB)) == _core(PRESETS["depth-anything-v1-vits"].model)


def test_v2_metric_config_with_only_out_features() -> None:
    cfg = {**V1_SMALL_HUB, "depth_estimation_type": "metric", "max_depth": 20}
    cfg["backbone_config"] = {k: v for k, v in V1_SMALL_HUB["backbone_config"].items() if k != "out_indices"}
    cfg["backbone_config"]["out_features"] = ["stage3", "stage6", "stage9", "stage12"]
    ours = hf_config_to_description(cfg)
    assert _core(ours) == _core(PRESETS["depth-anything-v2-metric-hypersim-vits"].model)


@pytest.mark.parametrize("name", ["depth-anything-v2-vitb", "depth-anything-v2-metric-vkitti-vitl",
                                  "depth-anything-v2-vitg", "depth-anything-v1-vitl"])
def test_round_trip_for_presets(name: str) -> None:
    cfg = PRESETS[name].model
    hf = description_to_hf_config(cfg)
    taps = cfg["init_args"]["encoder"]["init_args"]["layer_indices"]
    assert hf["backbone_config"]["out_indices"] == [i + 1 for i in taps]
    assert _core(hf_config_to_description(hf)) == _core(cfg)


def test_bad_configs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="cfg.json: missing field 'backbone_config'"):
        hf_config_to_description({"model_type": "depth_anything"}, "cfg.json")
    with pytest.raises(ValueError, match="reassemble_factors"):
        hf_config_to_description({**V1_SMALL_HUB, "reassemble_factors": [2, 2, 1, 1]})
    with pytest.raises(ValueError, match="model_type"):
        hf_config_to_description({**V1_SMALL_HUB, "model_type": "dpt"})
    with pytest.raises(ValueError, match="max_depth"):
        hf_config_to_description({**V1_SMALL_HUB, "depth_estimation_type": "metric"})
    with pytest.raises(ValueError, match="batch-norm"):
        description_to_hf_config(with_overrides(preset_description("tiny"), {"use_bn": True}))
    with pytest.raises(ValueError, match="twice"):
        description_to_hf_config(PRESETS["tiny"].model)
