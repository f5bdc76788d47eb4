"""Hugging Face ``DepthAnythingConfig`` <-> our model description (DINOv2 + DPT only).

Descriptions are the dicts of :mod:`da_toolkit.models.describe` (``class_path`` + ``init_args``
of the model, its encoder and decoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from da_toolkit.models.decoders.dpt import VIT_RESIZE_FACTORS, DPTDecoder
from da_toolkit.models.describe import DEPTH_MODEL_CLASS_PATH
from da_toolkit.models.encoders.dinov2 import DINOv2Encoder

__all__ = ["description_to_hf_config", "hf_config_to_description"]

_DINOV2 = f"{DINOv2Encoder.__module__}.{DINOv2Encoder.__qualname__}"
_DPT = f"{DPTDecoder.__module__}.{DPTDecoder.__qualname__}"


def _need(cfg: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in cfg:
        raise ValueError(f"{where}: missing field {key!r}")
    return cfg[key]


def hf_config_to_description(cfg: Mapping[str, Any], where: str = "config.json") -> dict[str, Any]:
    """Translate a ``DepthAnythingForDepthEstimation`` ``config.json`` (parsed) to our description.

    ``where`` names the file in error messages.
    """
    if cfg.get("model_type") not in (None, "depth_anything"):
        raise ValueError(f"{where}: model_type is {cfg.get('model_type')!r}, expected 'depth_anything'")
    bb = _need(cfg, "backbone_config", where)
    if not isinstance(bb, Mapping) or bb.get("model_type", "dinov2") != "dinov2":
        raise ValueError(f"{where}: backbone_config must describe a 'dinov2' backbone")
    if bb.get("num_register_tokens", 0):
        raise ValueError(f"{where}: DINOv2 with register tokens is not a Depth Anything backbone")
    depth = int(bb.get("num_hidden_layers", 12))
    if "out_indices" in bb and bb["out_indices"] is not None:
        indices = [int(i) for i in bb["out_indices"]]
    elif bb.get("out_features"):
        indices = [int(str(name).removeprefix("stage")) for name in bb["out_features"]]
    else:
        raise ValueError(f"{where}: backbone_config has neither out_indices nor out_features")
    if any(i < 1 or i > depth for i in indices):
        raise ValueError(f"{where}: out_indices {indices} must be block outputs 1..{depth} (1-based)")
    factors = [float(f) for f in cfg.get("reassemble_factors", VIT_RESIZE_FACTORS)]
    if factors != [float(f) for f in VIT_RESIZE_FACTORS]:
        raise ValueError(f"{where}: reassemble_factors {factors} differ from the supported {list(VIT_RESIZE_FACTORS)}")
    if int(cfg.get("head_hidden_size", 32)) != 32 or int(cfg.get("head_in_index", -1)) != -1:
        raise ValueError(f"{where}: only head_hidden_size 32 and head_in_index -1 are supported")
    kind = cfg.get("depth_estimation_type", "relative")
    if kind not in ("relative", "metric"):
        raise ValueError(f"{where}: depth_estimation_type {kind!r} is not 'relative' or 'metric'")
    max_depth = float(_need(cfg, "max_depth", where)) if kind == "metric" else None
    patch = bb.get("patch_size", cfg.get("patch_size", 14))
    encoder_args = {
        "embed_dim": int(bb.get("hidden_size", 768)),
        "depth": depth,
        "num_heads": int(bb.get("num_attention_heads", 12)),
        "mlp_ratio": float(bb.get("mlp_ratio", 4)),
        "swiglu": bool(bb.get("use_swiglu_ffn", False)),
        "patch_size": int(patch),
        "img_size": int(bb.get("image_size", 518)),
        "layer_indices": [i - 1 for i in indices],
        "layerscale_init": float(bb.get("layerscale_value", 1.0)),
    }
    decoder_args = {
        "features": int(cfg.get("fusion_hidden_size", 64)),
        "out_channels": [int(c) for c in cfg.get("neck_hidden_sizes", (48, 96, 192, 384))],
        "max_depth": max_depth,
    }
    return {
        "class_path": DEPTH_MODEL_CLASS_PATH,
        "init_args": {
            "encoder": {"class_path": _DINOV2, "init_args": encoder_args},
            "decoder": {"class_path": _DPT, "init_args": decoder_args},
            "weights": None,
            "encoder_weights": None,
            # the transformers post-processing of DepthAnything (V2 code path)
            "upsample_align_corners": True,
        },
    }


def _int_if_whole(v: float) -> int | float:
    return int(v) if float(v).is_integer() else float(v)


def description_to_hf_config(description: Mapping[str, Any]) -> dict[str, Any]:
    """Our description -> a ``config.json`` dict for ``DepthAnythingForDepthEstimation``.

    Raises ``ValueError`` for models HF cannot express (non-DINOv2 encoders, batch norm,
    class-token readout).
    """
    init = description.get("init_args", {})
    enc, dec = init.get("encoder", {}), init.get("decoder", {})
    enc_path, dec_path = enc.get("class_path"), dec.get("class_path")
    if enc_path not in (_DINOV2, "dinov2") or dec_path not in (_DPT, "dpt"):
        raise ValueError(f"only DINOv2 + DPT models have a Hugging Face form, got {enc_path} + {dec_path}")
    e, d = dict(enc.get("init_args", {})), dict(dec.get("init_args", {}))
    if d.get("use_bn") or d.get("use_clstoken"):
        raise ValueError("Hugging Face DepthAnything has no batch-norm or class-token-readout option")
    depth = int(e.get("depth", 12))
    taps = e.get("layer_indices") or list(range(depth - 4, depth))
    if len(set(taps)) != len(taps):
        raise ValueError(f"Hugging Face backbones cannot tap a block twice, got layer_indices {list(taps)}")
    max_depth = d.get("max_depth")
    return {
        "model_type": "depth_anything",
        "architectures": ["DepthAnythingForDepthEstimation"],
        "backbone_config": {
            "model_type": "dinov2",
            "hidden_size": int(e.get("embed_dim", 384)),
            "num_hidden_layers": depth,
            "num_attention_heads": int(e.get("num_heads", 6)),
            "mlp_ratio": _int_if_whole(e.get("mlp_ratio", 4)),
            "use_swiglu_ffn": bool(e.get("swiglu", False)),
            "patch_size": int(e.get("patch_size", 14)),
            "image_size": int(e.get("img_size", 518)),
            "layerscale_value": float(e.get("layerscale_init", 1.0)),
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "qkv_bias": True,
            "out_indices": [int(i) + 1 for i in taps],
            "out_features": [f"stage{int(i) + 1}" for i in taps],
            "reshape_hidden_states": False,
            "apply_layernorm": True,
        },
        "patch_size": int(e.get("patch_size", 14)),
        "reassemble_hidden_size": int(e.get("embed_dim", 384)),
        "reassemble_factors": list(VIT_RESIZE_FACTORS),
        "neck_hidden_sizes": [int(c) for c in d.get("out_channels", (48, 96, 192, 384))],
        "fusion_hidden_size": int(d.get("features", 64)),
        "head_in_index": -1,
        "head_hidden_size": 32,
        "depth_estimation_type": "relative" if max_depth is None else "metric",
        "max_depth": 1 if max_depth is None else _int_if_whole(max_depth),
    }
