"""``da-toolkit convert``: any supported input -> our safetensors, with errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from da_toolkit.commands.convert import main
from da_toolkit.models import load_model
from da_toolkit.models.keymaps import ours_to_official
from da_toolkit.models.weights import model_from_weights, read_weights, save_hf_folder

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
    res = subprocess.run([sys.executable, "-m", "da_toolkit.cli", "convert", "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "--preset" in res.stdout and "safetensors" in res.stdout
