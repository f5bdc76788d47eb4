"""LesionCNN: the encoder contract (levels, channels, strides), recorded arguments, model round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from da_toolkit.models import DepthModel, load_model
from da_toolkit.models.contract import check_encoder, check_model
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.description import build_model, describe_model
from da_toolkit.models.weights import save_weights
from da_toolkit_dermoscopy import LesionCNN

WIDTHS = (8, 8, 16, 16)


def tiny_model() -> DepthModel:
    torch.manual_seed(0)
    return DepthModel(LesionCNN(widths=WIDTHS), DPTDecoder(features=8, out_channels=(8, 8, 8, 8)))


def test_levels_channels_and_strides_as_declared() -> None:
    enc = LesionCNN(widths=WIDTHS, blocks_per_level=2)
    out = enc(torch.rand(2, 3, 64, 96))
    assert out.cls_tokens is None
    assert [tuple(f.shape) for f in out.features] == [(2, 8, 16, 24), (2, 8, 8, 12), (2, 16, 4, 6), (2, 16, 2, 3)]
    assert enc.out_channels == list(WIDTHS) and enc.reductions == [4, 8, 16, 32] and enc.patch_size is None
    check_encoder(enc, "model.init_args.encoder", levels=4)  # da-toolkit's own contract check


def test_constructor_arguments_recorded_automatically() -> None:
    assert LesionCNN(widths=WIDTHS).init_args == {"widths": [8, 8, 16, 16], "blocks_per_level": 1}
    assert LesionCNN().init_args == {"widths": [16, 32, 64, 128], "blocks_per_level": 1}


def test_bad_arguments_named() -> None:
    with pytest.raises(ValueError, match=r"LesionCNN: widths must be 4 positive channel counts, got \[8, 8\]"):
        LesionCNN(widths=(8, 8))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blocks_per_level must be >= 1"):
        LesionCNN(blocks_per_level=0)


def test_depth_model_with_dpt_describes_and_rebuilds_identically(tmp_path: Path) -> None:
    model = tiny_model().eval()
    assert model.input_multiple == 32
    check_model(model)
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
    assert expected.shape == (1, 64, 96)

    description = describe_model(model)
    assert json.loads(json.dumps(description)) == description
    encoder = description["init_args"]["encoder"]
    assert encoder == {"class_path": "da_toolkit_dermoscopy.encoder.LesionCNN",
                       "init_args": {"widths": [8, 8, 16, 16], "blocks_per_level": 1}}  # fmt: skip
    rebuilt = build_model(description)
    assert isinstance(rebuilt.encoder, LesionCNN) and describe_model(rebuilt) == description
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), expected, rtol=0, atol=0)

    path = tmp_path / "lesion.safetensors"
    save_weights(model, path)  # a self-describing file: rebuilt from the file alone
    loaded = load_model(path)
    assert isinstance(loaded.encoder, LesionCNN) and loaded.weights_loaded
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


def test_trains_one_step() -> None:
    model = tiny_model().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(2, 3, 64, 64)
    pred = model(x)
    loss = (pred - torch.rand(2, 64, 64)).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    opt.step()
