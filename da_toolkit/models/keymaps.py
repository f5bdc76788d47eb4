"""Key-name converters between our state dicts, the official release and Hugging Face.

Our keys: ``encoder.*`` (DINOv2 names: ``cls_token``, ``pos_embed``, ``mask_token``,
``patch_embed.proj``, ``blocks.{i}.*``, ``norm``) and ``decoder.*`` (official DPT names).

- Official V1/V2 ``.pth``: ``pretrained.*`` / ``depth_head.*`` (a prefix swap).
- Hugging Face ``DepthAnythingForDepthEstimation``: ``backbone.*`` / ``neck.*`` / ``head.*``
  with q/k/v split (written with the Hub names ``attention.attention.{query,key,value}``;
  the transformers>=5 names ``attention.{q,k,v}_proj`` / ``o_proj`` / ``gate_proj`` are read too).
- DINOv2 backbone-only: official ``dinov2_vit*14_pretrain.pth`` and timm (same names; timm's
  packed SwiGLU is ``mlp.fc1``/``mlp.fc2``) and Hugging Face ``Dinov2Model``.

All functions take and return ``dict[str, Tensor]`` without copying tensor data (except the
q/k/v concatenation and split).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch

__all__ = [
    "dinov2_to_ours_encoder",
    "hf_dinov2_to_ours_encoder",
    "hf_to_ours",
    "official_to_ours",
    "ours_to_hf",
    "ours_to_official",
]

StateDict = dict[str, torch.Tensor]


def _swap_prefix(sd: Mapping[str, torch.Tensor], mapping: Mapping[str, str]) -> StateDict:
    out: StateDict = {}
    for key, value in sd.items():
        for old, new in mapping.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            raise KeyError(f"key {key!r} has none of the expected prefixes {list(mapping)}")
    return out


def official_to_ours(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Official ``pretrained.*``/``depth_head.*`` -> ``encoder.*``/``decoder.*``."""
    return _swap_prefix(sd, {"pretrained.": "encoder.", "depth_head.": "decoder."})


def ours_to_official(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """``encoder.*``/``decoder.*`` -> official ``pretrained.*``/``depth_head.*``."""
    return _swap_prefix(sd, {"encoder.": "pretrained.", "decoder.": "depth_head."})


# --- Hugging Face -----------------------------------------------------------------------------

# Block-level renames, ours <-> HF Hub names (q/k/v and SwiGLU handled separately).
_HF_BLOCK = {
    "norm1": "norm1",
    "attn.proj": "attention.output.dense",
    "ls1.gamma": "layer_scale1.lambda1",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "mlp.w12": "mlp.weights_in",
    "mlp.w3": "mlp.weights_out",
    "ls2.gamma": "layer_scale2.lambda1",
}
# transformers>=5 in-memory names -> Hub names.
_HF_V5_ALIASES = {
    "attention.o_proj": "attention.output.dense",
    "mlp.down_proj": "mlp.weights_out",
}
_HF_EMBED = {
    "cls_token": "embeddings.cls_token",
    "mask_token": "embeddings.mask_token",
    "pos_embed": "embeddings.position_embeddings",
    "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
    "norm.weight": "layernorm.weight",
    "norm.bias": "layernorm.bias",
}
_RCU = {"resConfUnit1.conv1": "residual_layer1.convolution1", "resConfUnit1.conv2": "residual_layer1.convolution2",
        "resConfUnit2.conv1": "residual_layer2.convolution1", "resConfUnit2.conv2": "residual_layer2.convolution2",
        "out_conv": "projection"}


def _decoder_renames() -> dict[str, str]:
    """Our decoder module prefixes -> HF prefixes (parameter suffix ``.weight``/``.bias`` kept)."""
    m = {}
    for i in range(4):
        m[f"projects.{i}"] = f"neck.reassemble_stage.layers.{i}.projection"
        m[f"resize_layers.{i}"] = f"neck.reassemble_stage.layers.{i}.resize"
        m[f"scratch.layer{i + 1}_rn"] = f"neck.convs.{i}"
        for ours, hf in _RCU.items():
            m[f"scratch.refinenet{i + 1}.{ours}"] = f"neck.fusion_stage.layers.{3 - i}.{hf}"
    m["scratch.output_conv1"] = "head.conv1"
    m["scratch.output_conv2.0"] = "head.conv2"
    m["scratch.output_conv2.2"] = "head.conv3"
    return m


_DEC = _decoder_renames()
_DEC_INV = {v: k for k, v in _DEC.items()}


def _split_param(key: str) -> tuple[str, str]:
    module, _, param = key.rpartition(".")
    return module, param


def _encoder_to_hf(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """Our encoder keys (no ``encoder.`` prefix) -> HF Dinov2 keys under ``prefix``."""
    out: StateDict = {}
    for key, value in sd.items():
        if key in _HF_EMBED:
            out[prefix + _HF_EMBED[key]] = value
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", key)
        if m is None:
            raise KeyError(f"encoder key {key!r} has no Hugging Face equivalent")
        layer, rest = f"{prefix}encoder.layer.{m.group(1)}.", m.group(2)
        if rest.startswith("attn.qkv."):
            param = rest.rsplit(".", 1)[1]
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[f"{layer}attention.attention.{name}.{param}"] = part.contiguous()
            continue
        module, param = _split_param(rest)
        target = _HF_BLOCK.get(module) or _HF_BLOCK.get(rest)
        if target is None:
            raise KeyError(f"encoder key {key!r} has no Hugging Face equivalent")
        out[layer + (target if rest in _HF_BLOCK else f"{target}.{param}")] = value
    return out


def _hf_to_encoder(sd: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """HF Dinov2 keys under ``prefix`` (Hub or transformers>=5 names) -> our encoder keys."""
    inv_embed = {v: k for k, v in _HF_EMBED.items()}
    inv_block = {v: k for k, v in _HF_BLOCK.items()}
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    swiglu_in: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        rest = key[len(prefix):]
        if rest in inv_embed:
            out[inv_embed[rest]] = value
            continue
        m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", rest)
        if m is None:
            raise KeyError(f"unexpected Hugging Face backbone key {key!r}")
        block, sub = m.group(1), m.group(2)
        for alias, hub in _HF_V5_ALIASES.items():
            if sub.startswith(alias + "."):
                sub = hub + sub[len(alias):]
        qm = re.fullmatch(r"attention\.(?:attention\.)?(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)", sub)
        if qm is not None:
            name = {"q_proj": "query", "k_proj": "key", "v_proj": "value"}.get(qm.group(1), qm.group(1))
            qkv.setdefault((block, qm.group(2)), {})[name] = value
            continue
        gm = re.fullmatch(r"mlp\.(gate_proj|up_proj)\.(weight|bias)", sub)
        if gm is not None:
            swiglu_in.setdefault((block, gm.group(2)), {})[gm.group(1)] = value
            continue
        if sub in inv_block:
            out[f"blocks.{block}.{inv_block[sub]}"] = value
            continue
        module, param = _split_param(sub)
        if module not in inv_block:
            raise KeyError(f"unexpected Hugging Face backbone key {key!r}")
        out[f"blocks.{block}.{inv_block[module]}.{param}"] = value
    for (block, param), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise KeyError(f"layer {block}: incomplete q/k/v {param}s in the Hugging Face weights ({sorted(parts)})")
        out[f"blocks.{block}.attn.qkv.{param}"] = torch.cat([parts["query"], parts["key"], parts["value"]], 0)
    for (block, param), parts in swiglu_in.items():
        if set(parts) != {"gate_proj", "up_proj"}:
            raise KeyError(f"layer {block}: incomplete SwiGLU {param}s in the Hugging Face weights")
        out[f"blocks.{block}.mlp.w12.{param}"] = torch.cat([parts["gate_proj"], parts["up_proj"]], 0)
    return out


def ours_to_hf(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Our keys -> Hugging Face ``DepthAnythingForDepthEstimation`` Hub keys.

    Raises ``KeyError`` for parts HF cannot express (batch norm, class-token readout).
    """
    enc = {k[len("encoder."):]: v for k, v in sd.items() if k.startswith("encoder.")}
    out = _encoder_to_hf(enc, "backbone.")
    for key, value in sd.items():
        if key.startswith("encoder."):
            continue
        if not key.startswith("decoder."):
            raise KeyError(f"key {key!r} is neither encoder.* nor decoder.*")
        module, param = _split_param(key[len("decoder."):])
        if module not in _DEC:
            raise KeyError(f"decoder key {key!r} has no Hugging Face equivalent (batch norm or class-token readout?)")
        out[f"{_DEC[module]}.{param}"] = value
    return out


def hf_to_ours(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Hugging Face ``DepthAnythingForDepthEstimation`` keys -> ours."""
    backbone = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    out = {"encoder." + k: v for k, v in _hf_to_encoder(backbone, "backbone.").items()}
    for key, value in sd.items():
        if key.startswith("backbone."):
            continue
        module, param = _split_param(key)
        if module not in _DEC_INV:
            raise KeyError(f"unexpected Hugging Face key {key!r}")
        out[f"decoder.{_DEC_INV[module]}.{param}"] = value
    return out


def dinov2_to_ours_encoder(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Official DINOv2 / timm backbone keys -> our encoder keys (without ``encoder.``).

    Drops heads and extras that the depth encoder has no use for (``head.*``, ``fc_norm.*``,
    ``reg_token``, ``register_tokens``); maps timm's packed SwiGLU ``mlp.fc1``/``mlp.fc2`` to
    ``mlp.w12``/``mlp.w3`` when the checkpoint is a SwiGLU one (``fc1`` twice the ``fc2`` width).
    """
    drop: tuple[Callable[[str], bool], ...] = (
        lambda k: k.startswith(("head.", "fc_norm.", "head_drop")),
        lambda k: k in ("reg_token", "register_tokens"),
    )
    out: StateDict = {}
    swiglu = any(".mlp.w12." in k for k in sd) or _timm_packed_swiglu(sd)
    for key, value in sd.items():
        if any(f(key) for f in drop):
            continue
        if swiglu:
            key = re.sub(r"\.mlp\.fc1\.", ".mlp.w12.", key)
            key = re.sub(r"\.mlp\.fc2\.", ".mlp.w3.", key)
        out[key] = value
    return out


def _timm_packed_swiglu(sd: Mapping[str, torch.Tensor]) -> bool:
    fc1, fc2 = sd.get("blocks.0.mlp.fc1.weight"), sd.get("blocks.0.mlp.fc2.weight")
    return fc1 is not None and fc2 is not None and fc1.shape[0] == 2 * fc2.shape[1]


def hf_dinov2_to_ours_encoder(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Hugging Face ``Dinov2Model`` keys (optionally under ``dinov2.``) -> our encoder keys."""
    prefix = "dinov2." if any(k.startswith("dinov2.") for k in sd) else ""
    kept = {k: v for k, v in sd.items() if k.startswith(prefix) and not k.startswith(prefix + "pooler")}
    return _hf_to_encoder(kept, prefix)
