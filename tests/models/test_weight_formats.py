"""Weight formats: detection from content, conversions, safety, truncation and mismatch errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from da_toolkit.models import (
    CHECKPOINT_KEY,
    build_model,
    describe_model,
    load_model,
    model_from_weights,
    preset_description,
)
from da_toolkit.models.keymaps import hf_to_ours, ours_to_hf, ours_to_official
from da_toolkit.models.weights import (
    UnsafeCheckpointError,
    WeightsError,
    WeightsMismatchError,
    load_encoder_weights,
    load_weights,
    read_weights,
    save_hf_folder,
    save_weights,
)

TINY4 = {"depth": 4, "layer_indices": [0, 1, 2, 3]}  # distinct taps (needed by the HF format)


def _source(max_depth: float | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    model = load_model("tiny", max_depth=max_depth, **TINY4)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_official_pth(tmp_path: Path) -> None:
    src = _source()
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(ours_to_official(src.state_dict()), path)
    assert all(k.startswith(("pretrained.", "depth_head.")) for k in torch.load(path, weights_only=True))
    assert read_weights(path).format == "official"
    _same(load_model("tiny", weights=path, **TINY4), src)


def test_official_pth_wrapped_in_model_key(tmp_path: Path) -> None:
    src = _source()
    path = tmp_path / "wrapped.pth"
    torch.save({"model": ours_to_official(src.state_dict())}, path)
    _same(load_model("tiny", weights=path, **TINY4), src)


def test_hf_folder_round_trip_and_config(tmp_path: Path) -> None:
    src = _source(max_depth=20.0)
    save_hf_folder(src, tmp_path / "hf")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert cfg["depth_estimation_type"] == "metric" and cfg["max_depth"] == 20
    assert cfg["backbone_config"]["out_indices"] == [1, 2, 3, 4]
    keys = load_file(tmp_path / "hf" / "model.safetensors").keys()
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in keys
    assert "neck.fusion_stage.layers.0.projection.weight" in keys  # = refinenet4
    model, loaded = model_from_weights(tmp_path / "hf")  # architecture from config.json
    assert loaded.format == "hf" and model.output_kind == "metric" and model.max_depth == 20.0
    _same(model, src)


def test_hf_sharded_folder(tmp_path: Path) -> None:
    src = _source()
    save_hf_folder(src, tmp_path / "hf")
    full = load_file(tmp_path / "hf" / "model.safetensors")
    (tmp_path / "hf" / "model.safetensors").unlink()
    keys = sorted(full)
    halves = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for shard, names in halves.items():
        save_file({k: full[k] for k in names}, tmp_path / "hf" / shard)
    index = {"metadata": {}, "weight_map": {k: shard for shard, names in halves.items() for k in names}}
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps(index))
    _same(load_model("tiny", weights=tmp_path / "hf", **TINY4), src)
    (tmp_path / "hf" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match="shard model-00002-of-00002.safetensors is missing"):
        read_weights(tmp_path / "hf")


def test_hf_v5_key_names_are_read(tmp_path: Path) -> None:
    """transformers>=5 in-memory names (q_proj/k_proj/v_proj/o_proj) load as well."""
    src = _source()
    hub = ours_to_hf(src.state_dict())
    renamed = {}
    for k, v in hub.items():
        k = k.replace("attention.attention.query", "attention.q_proj").replace("attention.attention.key", "attention.k_proj")
        k = k.replace("attention.attention.value", "attention.v_proj").replace("attention.output.dense", "attention.o_proj")
        renamed[k] = v
    assert any("q_proj" in k for k in renamed)
    back = hf_to_ours(renamed)
    for k, v in src.state_dict().items():
        assert torch.equal(back[k], v), k


def test_hf_swiglu_split_into_gate_and_up() -> None:
    enc_sd = {"encoder.blocks.0.mlp.w12.weight": torch.arange(8.0).reshape(4, 2)}
    hub = ours_to_hf(enc_sd)
    assert torch.equal(hub["backbone.encoder.layer.0.mlp.weights_in.weight"], enc_sd["encoder.blocks.0.mlp.w12.weight"])
    gate, up = enc_sd["encoder.blocks.0.mlp.w12.weight"].chunk(2)
    v5 = {"backbone.encoder.layer.0.mlp.gate_proj.weight": gate, "backbone.encoder.layer.0.mlp.up_proj.weight": up}
    assert torch.equal(hf_to_ours(v5)["encoder.blocks.0.mlp.w12.weight"], enc_sd["encoder.blocks.0.mlp.w12.weight"])


def test_our_safetensors_rebuild_without_preset(tmp_path: Path) -> None:
    src = _source(max_depth=80.0)
    path = tmp_path / "ours.safetensors"
    save_weights(src, path, preset="tiny")
    loaded = read_weights(path)
    assert loaded.format == "da_toolkit" and loaded.preset == "tiny"
    assert loaded.metadata["output_kind"] == "metric"
    model, _ = model_from_weights(path)
    assert model.max_depth == 80.0
    _same(model, src)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp files


def test_lightning_checkpoint(tmp_path: Path) -> None:
    src = _source()
    sd = {f"model.{k}": v for k, v in src.state_dict().items()}
    sd["frozen_dinov2.blocks.0.norm1.weight"] = torch.ones(3)  # other task members are ignored
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10, "hyper_parameters": {"lr": 5e-6}}, path)
    loaded = read_weights(path)
    assert loaded.format == "lightning"
    _same(load_model("tiny", weights=path, **TINY4), src)


def test_backbone_only_checkpoints(tmp_path: Path) -> None:
    src = _source()
    enc_sd = {k[len("encoder."):]: v for k, v in src.state_dict().items() if k.startswith("encoder.")}
    official = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(enc_sd, official)
    timm_style = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in enc_sd.items() if k != "mask_token"}, timm_style)
    hf_style = tmp_path / "hf_dinov2.safetensors"
    hub = {k[len("backbone."):]: v for k, v in ours_to_hf(src.state_dict()).items() if k.startswith("backbone.")}
    save_file({k: v.contiguous() for k, v in hub.items()}, hf_style)
    for path, fmt in [(official, "dinov2"), (timm_style, "dinov2"), (hf_style, "hf_dinov2")]:
        target = load_model("tiny", **TINY4)
        loaded = load_encoder_weights(target.encoder, path)
        assert loaded.format == fmt and loaded.backbone_only
        for k, v in enc_sd.items():
            if k != "mask_token" or fmt != "dinov2" or path == official:
                assert torch.equal(target.encoder.state_dict()[k], v), (path.name, k)
        with pytest.raises(WeightsError, match="load_encoder_weights"):
            load_weights(target, path)


def test_encoder_from_full_checkpoint(tmp_path: Path) -> None:
    src = _source()
    path = tmp_path / "full.safetensors"
    save_weights(src, path)
    target = load_model("tiny", **TINY4)
    load_encoder_weights(target.encoder, path)
    _same(target.encoder, src.encoder)


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    src = _source()
    path = tmp_path / "w.pth"
    torch.save(ours_to_official(src.state_dict()), path)
    with pytest.raises(WeightsMismatchError) as info:
        load_model("tiny", weights=path, depth=5, layer_indices=[0, 1, 2, 4])
    msg = str(info.value)
    n_block = sum(1 for k in src.state_dict() if k.startswith("encoder.blocks.0."))  # keys of one block
    assert "\n" not in msg  # one line: a command prints it as its error line
    assert str(path) in msg and f"missing keys ({n_block}): encoder.blocks.4.* ({n_block} keys)" in msg
    assert "encoder.blocks.4.norm1.weight" in info.value.missing
    with pytest.raises(WeightsMismatchError) as info:
        load_model("tiny", weights=path, depth=3, layer_indices=[0, 1, 2, 2])
    assert f"unexpected keys ({n_block}): encoder.blocks.3.* ({n_block} keys)" in str(info.value)
    assert "encoder.blocks.3.attn.qkv.weight" in info.value.unexpected
    with pytest.raises(WeightsMismatchError) as info:
        load_model("tiny", weights=path, features=8, **TINY4)
    err = info.value
    assert err.mismatched and "shape mismatches" in str(err) and "decoder.scratch.layer1_rn.weight" in str(err)
    assert not err.missing and not err.unexpected


def test_mismatch_key_groups_worked_by_hand() -> None:
    from da_toolkit.models.weights.errors import group_keys

    keys = ["a.blocks.4.n.weight", "a.blocks.4.n.bias", "a.blocks.5.x", "head.proj.weight", "head.proj.bias", "scale"]
    assert group_keys(keys) == ["a.blocks.4.* (2 keys)", "a.blocks.5.x", "head.proj.* (2 keys)", "scale"]


def test_real_lightning_checkpoint_with_hyper_parameters(tmp_path: Path) -> None:
    """Hyper-parameter objects (our dataclasses, paths, AttributeDict) become inert, weights load;
    the model is rebuilt from the recorded description, never from hyper-parameter names."""
    from lightning.fabric.utilities.data import AttributeDict

    from da_toolkit.models.preset_table import PRESETS

    src = _source()
    hp = AttributeDict(lr=5e-6, config=PRESETS["tiny"], root=Path("/data/nyu"))
    path = tmp_path / "epoch=0.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()},
                "hyper_parameters": hp, "pytorch-lightning_version": "2.6.0"}, path)
    _same(load_model("tiny", weights=path, **TINY4), src)
    # no description recorded: the architecture must be named (hyper-parameters are not read)
    with pytest.raises(WeightsError, match="name a preset"):
        model_from_weights(path)
    hp2 = AttributeDict(preset="tiny", model_overrides=TINY4, optim=PRESETS["tiny"])
    path2 = tmp_path / "task.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}, "hyper_parameters": hp2,
                CHECKPOINT_KEY: describe_model(src)}, path2)
    model, loaded = model_from_weights(path2)  # the recorded description rebuilds it
    assert loaded.format == "lightning" and loaded.description == describe_model(src)
    _same(model, src)


def test_functions_of_our_own_package_are_refused(tmp_path: Path) -> None:
    class CallsOurs:
        def __reduce__(self):
            return (save_weights, (None, "x"))

    path = tmp_path / "calls.pth"
    torch.save({"pretrained.cls_token": torch.zeros(1), "x": CallsOurs()}, path)
    with pytest.raises(UnsafeCheckpointError, match="da_toolkit.models.weights.save.save_weights"):
        read_weights(path)


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_unsafe_pickle_is_refused_without_running(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"pretrained.cls_token": torch.zeros(1), "x": _Exploit(str(marker))}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_model("tiny", weights=path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_encoder_weights(load_model("tiny").encoder, path)
    assert not marker.exists()
    # the payload is real: an unrestricted unpickle does create the file
    if writer == "torch":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.exists()


def test_truncated_files_are_reported(tmp_path: Path) -> None:
    src = _source()
    st = tmp_path / "w.safetensors"
    save_weights(src, st)
    pt = tmp_path / "w.pth"
    torch.save(ours_to_official(src.state_dict()), pt)
    for path in (st, pt):
        data = path.read_bytes()
        cut = tmp_path / f"cut_{path.name}"
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(WeightsError, match=f"cut_{path.name}"):
            read_weights(cut)


def test_garbage_unknown_and_missing_inputs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    rng = np.random.default_rng(0)
    for _ in range(200):  # random bytes make the unpickler fail in many different ways
        junk.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 200)), dtype=np.uint8).tobytes())
        with pytest.raises(WeightsError, match="junk.bin"):
            read_weights(junk)
    unknown = tmp_path / "other.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, unknown)
    with pytest.raises(WeightsError, match="unrecognised weights"):
        read_weights(unknown)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_weights(tmp_path / "nope.pth")
    folder = tmp_path / "hf"
    folder.mkdir()
    with pytest.raises(WeightsError, match="config.json"):
        read_weights(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(WeightsError, match="config.json: invalid JSON"):
        read_weights(folder)
    official = tmp_path / "official.pth"
    torch.save(ours_to_official(_source().state_dict()), official)
    with pytest.raises(WeightsError, match="name a preset"):
        model_from_weights(official)


def test_transformers_dinov2_backbone_parity(tmp_path: Path) -> None:
    """A transformers Dinov2Model state dict (its own key names) initialises our encoder exactly."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    image_size=56, patch_size=14, layerscale_value=0.5)
    ref = transformers.Dinov2Model(cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path / "dinov2.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    enc = load_model("tiny", layer_indices=[1, 1, 1, 1]).encoder
    assert load_encoder_weights(enc, path).format == "hf_dinov2"
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        theirs = ref(pixel_values=x).last_hidden_state
        ours = enc(x)
    torch.testing.assert_close(ours.cls_tokens[0], theirs[:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours.features[0].flatten(2).transpose(1, 2), theirs[:, 1:], atol=1e-5, rtol=1e-4)


def _official_vits_keys(features: int = 64, out: tuple[int, int, int, int] = (48, 96, 192, 384)) -> dict[str, tuple[int, ...]]:
    """Hand-written key -> shape map of the official ``depth_anything_v2_vits.pth`` (and V1 vits:
    same module names), from the official ``DepthAnythingV2`` / ``DPTHead`` / DINOv2 code:
    ``pretrained`` = DINOv2 ViT-S/14 (blocks not chunked), ``depth_head`` = DPT without batch
    norm and without class-token readout (``resize_layers.2`` is an Identity)."""
    d, mlp = 384, 1536
    keys: dict[str, tuple[int, ...]] = {
        "pretrained.cls_token": (1, 1, d), "pretrained.pos_embed": (1, 1370, d), "pretrained.mask_token": (1, d),
        "pretrained.patch_embed.proj.weight": (d, 3, 14, 14), "pretrained.patch_embed.proj.bias": (d,),
        "pretrained.norm.weight": (d,), "pretrained.norm.bias": (d,),
    }
    for i in range(12):
        b = f"pretrained.blocks.{i}."
        keys.update({
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (mlp, d), b + "mlp.fc1.bias": (mlp,),
            b + "mlp.fc2.weight": (d, mlp), b + "mlp.fc2.bias": (d,), b + "ls2.gamma": (d,),
        })
    h = "depth_head."
    for i, c in enumerate(out):
        keys[f"{h}projects.{i}.weight"], keys[f"{h}projects.{i}.bias"] = (c, d, 1, 1), (c,)
        keys[f"{h}scratch.layer{i + 1}_rn.weight"] = (features, c, 3, 3)
    keys.update({
        h + "resize_layers.0.weight": (out[0], out[0], 4, 4), h + "resize_layers.0.bias": (out[0],),
        h + "resize_layers.1.weight": (out[1], out[1], 2, 2), h + "resize_layers.1.bias": (out[1],),
        h + "resize_layers.3.weight": (out[3], out[3], 3, 3), h + "resize_layers.3.bias": (out[3],),
        h + "scratch.output_conv1.weight": (features // 2, features, 3, 3), h + "scratch.output_conv1.bias": (features // 2,),
        h + "scratch.output_conv2.0.weight": (32, features // 2, 3, 3), h + "scratch.output_conv2.0.bias": (32,),
        h + "scratch.output_conv2.2.weight": (1, 32, 1, 1), h + "scratch.output_conv2.2.bias": (1,),
    })
    for r in range(1, 5):
        f = f"{h}scratch.refinenet{r}."
        keys[f + "out_conv.weight"], keys[f + "out_conv.bias"] = (features, features, 1, 1), (features,)
        for unit in ("resConfUnit1", "resConfUnit2"):
            for conv in ("conv1", "conv2"):
                keys[f"{f}{unit}.{conv}.weight"], keys[f"{f}{unit}.{conv}.bias"] = (features, features, 3, 3), (features,)
    return keys


@pytest.mark.parametrize("preset", ["depth-anything-v2-vits", "depth-anything-v1-vits", "depth-anything-v2-metric-vkitti-vits"])
def test_official_key_names_and_shapes_match_the_official_code(preset: str, tmp_path: Path) -> None:
    """Our official-format mapping against an independent, hand-written official key list; a file
    with exactly those keys loads strictly."""
    expected = _official_vits_keys()
    with torch.device("meta"):
        model = build_model(preset_description(preset))
    mapped = {k: tuple(v.shape) for k, v in ours_to_official(model.state_dict()).items()}
    assert sorted(set(mapped) - set(expected)) == [] and sorted(set(expected) - set(mapped)) == []
    assert mapped == expected
    g = torch.Generator().manual_seed(0)
    path = tmp_path / "official.pth"
    torch.save({k: torch.randn(s, generator=g) for k, s in expected.items()}, path)
    loaded = load_model(preset, weights=path)
    assert read_weights(path).format == "official"
    ref = torch.load(path, weights_only=True)
    assert torch.equal(loaded.encoder.blocks[11].ls2.gamma, ref["pretrained.blocks.11.ls2.gamma"])
    assert torch.equal(loaded.decoder.scratch.output_conv2[2].weight, ref["depth_head.scratch.output_conv2.2.weight"])
