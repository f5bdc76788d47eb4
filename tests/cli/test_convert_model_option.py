"""`da-toolkit convert --model`: the architecture of a file that does not record it, for any encoder."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from da_toolkit.cli.convert import main

CNN = {"class_path": "DepthModel",
       "init_args": {"encoder": {"class_path": "convnext", "init_args": {"variant": "atto"}},
                     "decoder": {"class_path": "dpt", "init_args": {"features": 16, "out_channels": [8, 16, 32, 32]}}}}


def test_a_bare_state_dict_of_a_convnext_model_converts_with_its_description(tmp_path: Path, capsys) -> None:
    from da_toolkit import load_model
    from da_toolkit.models.description import build_model

    torch.manual_seed(0)
    model = build_model(CNN).eval()
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, bare)  # no description
    out = tmp_path / "cnn.safetensors"
    assert main([str(bare), str(out)]) == 1
    assert "records no model description" in capsys.readouterr().err
    assert main([str(bare), str(out), "--model", yaml.safe_dump(CNN, default_flow_style=True)]) == 0
    rebuilt = load_model(str(out)).eval()  # the written file describes its model
    x = torch.rand(1, 3, 64, 96)
    torch.testing.assert_close(rebuilt(x), model(x))
    spec = tmp_path / "model.yaml"
    spec.write_text(yaml.safe_dump({"model": CNN}))
    assert main([str(bare), str(tmp_path / "b.safetensors"), "--model", str(spec)]) == 0
    capsys.readouterr()
    assert main([str(bare), str(tmp_path / "c.safetensors"), "--model", "tiny", "--preset", "tiny"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main([str(bare), str(tmp_path / "d.safetensors"), "--model", "tiny"]) == 1  # wrong architecture
    assert "bare.pth" in capsys.readouterr().err and not (tmp_path / "d.safetensors").exists()
