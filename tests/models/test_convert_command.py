"""``da-toolkit convert``: any supported input -> our safetensors, with errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from da_toolkit.cli.convert import main
from da_toolkit.models import (
    CHECKPOINT_KEY,
    describe_model,
    load_model,
    model_from_weights,
)
from da_toolkit.models.keymaps import ours_to_official
from da_toolkit.models.weights import read_weights, save_hf_folder

TINY4 = {"depth": 4, "layer_indices": [0, 1, 2, 3]}


def _src(max_depth: float | None = None) -> torch.nn.Module:
    torch.manual_seed(1)
    m = load_model("tiny", max_depth=max_depth, **TINY4)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_convert_hf_folder_round_trip(tmp_path: Path, capsys) -> None:
    src = _src(max_depth=20.0)
    save_hf_folder(src, tmp_path / "hf")
    out = tmp_path / "out.safetensors"
    assert main([str(tmp_path / "hf"), str(out)]) == 0
    assert "hf weights" in capsys.readouterr().out
    model, loaded = model_from_weights(out)  # rebuilds itself from the metadata
    assert loaded.format == "da_toolkit" and model.output_kind == "metric"
    _assert_same(model, src)
    x = torch.randn(1, 3, 28, 42)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src.eval()(x), rtol=0, atol=0)


def test_convert_official_needs_preset(tmp_path: Path, capsys) -> None:
    src = _src()
    pth = tmp_path / "official.pth"
    torch.save(ours_to_official(src.state_dict()), pth)
    out = tmp_path / "out.safetensors"
    assert main([str(pth), str(out)]) == 1
    assert "--preset" in capsys.readouterr().err and not out.exists()
    # a preset whose architecture does not fit: mismatch error, nothing written
    assert main([str(pth), str(out), "--preset", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "do not fit" in err and "unexpected keys" in err and "encoder.blocks.3." in err
    assert not out.exists()


def test_convert_official_with_preset(tmp_path: Path) -> None:
    src = load_model("tiny")  # the preset's own architecture
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.01)
    pth = tmp_path / "official.pth"
    torch.save(ours_to_official(src.state_dict()), pth)
    out = tmp_path / "out.safetensors"
    assert main([str(pth), str(out), "--preset", "tiny"]) == 0
    assert read_weights(out).preset == "tiny"
    _assert_same(load_model("tiny", weights=out), src)


def test_convert_rejects_bad_output_and_missing_input(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing.pth"), str(tmp_path / "o.safetensors")]) == 1
    assert "missing.pth" in capsys.readouterr().err
    assert main([str(tmp_path / "x.pth"), str(tmp_path / "o.pt")]) == 1
    assert ".safetensors" in capsys.readouterr().err


def test_convert_help_through_cli() -> None:
    res = subprocess.run([sys.executable, "-m", "da_toolkit.cli", "convert", "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "--preset" in res.stdout and "safetensors" in res.stdout


def _tiny_src() -> torch.nn.Module:
    """The ``tiny`` preset's own architecture with non-default weights."""
    torch.manual_seed(2)
    src = load_model("tiny")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return src


def test_convert_our_safetensors_input(tmp_path: Path, capsys) -> None:
    from da_toolkit.models.weights import save_weights

    src = _src(max_depth=80.0)  # not a preset architecture: the file's description rebuilds it
    ours = tmp_path / "ours.safetensors"
    save_weights(src, ours)
    out = tmp_path / "out.safetensors"
    assert main([str(ours), str(out)]) == 0
    assert "da_toolkit weights" in capsys.readouterr().out
    model, loaded = model_from_weights(out)
    assert loaded.format == "da_toolkit" and model.max_depth == 80.0
    _assert_same(model, src)


def test_convert_lightning_checkpoint_input(tmp_path: Path, capsys) -> None:
    src = _tiny_src()
    sd = {f"model.{k}": v for k, v in src.state_dict().items()}
    sd["teacher.something"] = torch.zeros(2)  # other task members are not part of the model
    described = tmp_path / "described.ckpt"  # what a task writes: the model description
    torch.save({"state_dict": sd, CHECKPOINT_KEY: describe_model(src)}, described)
    out = tmp_path / "out.safetensors"
    assert main([str(described), str(out)]) == 0
    assert "lightning weights" in capsys.readouterr().out
    assert read_weights(out).description == describe_model(src)
    _assert_same(load_model(out), src)
    # an old-format checkpoint (task hyper-parameters only) is not guessed from: name the preset
    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": sd, "hyper_parameters": {"preset": "tiny", "model_overrides": {}}}, bare)
    out2 = tmp_path / "out2.safetensors"
    assert main([str(bare), str(out2)]) == 1
    err = capsys.readouterr().err
    assert "no model description" in err and "re-save" in err and not out2.exists()
    assert main([str(bare), str(out2), "--preset", "tiny"]) == 0
    _assert_same(load_model("tiny", weights=out2), src)


def test_convert_backbone_only_inputs_give_an_encoder_file(tmp_path: Path, capsys) -> None:
    import pytest
    from safetensors.torch import save_file

    from da_toolkit.models import build_model
    from da_toolkit.models.keymaps import ours_to_hf
    from da_toolkit.models.weights import (
        WeightsError,
        load_encoder_weights,
        load_weights,
    )

    src = _tiny_src()
    enc_sd = {k[len("encoder."):]: v for k, v in src.state_dict().items() if k.startswith("encoder.")}
    official = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(enc_sd, official)
    timm_style = tmp_path / "timm.safetensors"  # timm: same names, no mask_token
    save_file({k: v.contiguous() for k, v in enc_sd.items() if k != "mask_token"}, timm_style)
    hf_style = tmp_path / "hf_dinov2.safetensors"
    hub = {k[len("backbone."):]: v for k, v in ours_to_hf(src.state_dict()).items() if k.startswith("backbone.")}
    save_file({k: v.contiguous() for k, v in hub.items()}, hf_style)
    for path, fmt in [(official, "dinov2"), (timm_style, "dinov2"), (hf_style, "hf_dinov2")]:
        out = tmp_path / f"{path.stem}.enc.safetensors"
        assert main([str(path), str(out)]) == 1  # a backbone does not record its architecture
        assert "--preset" in capsys.readouterr().err and not out.exists()
        assert main([str(path), str(out), "--preset", "tiny"]) == 0
        assert f"{fmt} backbone weights" in capsys.readouterr().out
        loaded = read_weights(out)
        assert loaded.format == "da_toolkit" and loaded.backbone_only and loaded.preset == "tiny"
        target = load_model("tiny")
        load_encoder_weights(target.encoder, out)
        for k, v in enc_sd.items():
            if k != "mask_token" or path != timm_style:
                assert torch.equal(target.encoder.state_dict()[k], v), (path.name, k)
        with pytest.raises(WeightsError, match="load_encoder_weights"):
            load_weights(target, out)
        student = build_model({"preset": "tiny", "encoder_weights": str(out)})
        assert torch.equal(student.encoder.blocks[1].attn.qkv.weight, src.encoder.blocks[1].attn.qkv.weight)
        again = tmp_path / f"{path.stem}.again.safetensors"  # our encoder file converts without --preset
        assert main([str(out), str(again)]) == 0
        assert read_weights(again).backbone_only
    # a backbone of another architecture: mismatch listed, nothing written
    bad = tmp_path / "bad.enc.safetensors"
    assert main([str(official), str(bad), "--preset", "depth-anything-v2-vits"]) == 1
    assert "shape mismatches" in capsys.readouterr().err and not bad.exists()
