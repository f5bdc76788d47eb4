"""The public Python API of issue 2 section 5, exactly as documented."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from da_toolkit import load_model
from da_toolkit.models import DepthModel
from da_toolkit.models.keymaps import ours_to_official
from da_toolkit.models.preprocess import normalize, prepare_image, upsample_prediction


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("network access attempted")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)


@pytest.fixture(scope="module")
def small() -> DepthModel:
    with pytest.MonkeyPatch.context() as mp:  # random init must never touch the network
        mp.setattr(socket.socket, "connect", _refuse)
        mp.setattr(socket, "create_connection", _refuse)
        return load_model("depth-anything-v2-vits")


def test_random_init(small: DepthModel) -> None:
    model = small
    assert isinstance(model, DepthModel) and not model.training
    assert model.output_kind == "disparity"
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 24.8


def test_load_with_weights_file(tmp_path: Path, small: DepthModel, no_network: None) -> None:
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.001)
    path = tmp_path / "depth_anything_v2_vits.pth"
    torch.save(ours_to_official(small.state_dict()), path)
    model = load_model("depth-anything-v2-vits", weights=str(path))
    for k, v in small.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_forward_contract(small: DepthModel) -> None:
    x = normalize(torch.rand(2, 3, 70, 98))
    with torch.no_grad():
        disp = small(x)
        one = small(x[1:])
    assert disp.shape == (2, 70, 98) and disp.dtype == torch.float32
    assert (disp >= 0).all()  # relative disparity from a ReLU head
    torch.testing.assert_close(disp[1:], one, atol=1e-5, rtol=1e-5)  # images are independent
    with pytest.raises(ValueError, match="multiples of the patch size 14"):
        small(torch.zeros(1, 3, 70, 100))


def test_infer_image_contract(small: DepthModel) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(45, 61, 3), dtype=np.uint8)
    depth = small.infer_image(rgb, input_size=70)
    assert isinstance(depth, np.ndarray) and depth.shape == (45, 61) and depth.dtype == np.float32
    with torch.no_grad():
        ref = upsample_prediction(small(prepare_image(rgb, 70)), (45, 61))[0].numpy()
    np.testing.assert_allclose(depth, ref, rtol=1e-6, atol=1e-7)


def test_metric_preset_outputs_metres() -> None:
    model = load_model("depth-anything-v2-metric-vkitti-vits")
    assert model.output_kind == "metric" and model.max_depth == 80.0
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 28, 28))
    assert ((out > 0) & (out < 80.0)).all()


def test_weights_may_be_a_path_object(tmp_path: Path, no_network: None) -> None:
    src = load_model("tiny")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.01)
    path = tmp_path / "tiny.pth"
    torch.save(ours_to_official(src.state_dict()), path)
    model = load_model("tiny", weights=path)  # pathlib.Path, not only str
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
