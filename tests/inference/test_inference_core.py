"""The one inference core: same outputs through every entry point, the model's input multiple,
and the release's upsampling rule checked against an independent official post-processing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from da_toolkit.inference.predictor import Predictor
from da_toolkit.models.decoders.dpt import DPTDecoder
from da_toolkit.models.depth_model import DepthModel
from da_toolkit.models.encoders.base import Encoder, EncoderOutput
from da_toolkit.models.inference_core import (
    input_multiple,
    network_size,
    predict_rgb,
    predict_tensor,
)


class _TinyCNN(Encoder):
    """A 4-level conv pyramid with strides 4, 8, 16, 32 (no patch size)."""

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = [8, 8, 8, 8]
        self.reductions = [4, 8, 16, 32]
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.downs = nn.ModuleList(nn.Conv2d(8, 8, 3, stride=2, padding=1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        for side in x.shape[-2:]:
            if side % 32:
                raise ValueError(f"_TinyCNN needs multiples of 32, got {tuple(x.shape)}")
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return EncoderOutput(feats, None)


class _ShapeSpy(nn.Module):
    """Wraps a model, recording the input shapes of each forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.shapes: list[tuple[int, ...]] = []

    @property
    def input_multiple(self) -> int:
        return input_multiple(self.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.model(x)


def _cnn_model() -> DepthModel:
    torch.manual_seed(0)
    return DepthModel(_TinyCNN(), DPTDecoder(features=8, out_channels=(8, 8, 8, 8))).eval()


def _official_output(model: nn.Module, rgb: np.ndarray, input_size: int, multiple: int, align_corners: bool) -> np.ndarray:
    """Independent official pipeline: cv2 resize of the [0,1] image (lower bound, aspect kept),
    normalise, forward, then ``F.interpolate`` of the raw output as the official run.py / infer_image."""
    h, w = rgb.shape[:2]
    scale = max(input_size / h, input_size / w)

    def side(x: float) -> int:
        y = int(np.round(x / multiple) * multiple)
        return y if y >= input_size else int(np.ceil(x / multiple) * multiple)

    th, tw = side(scale * h), side(scale * w)
    img = cv2.resize(rgb / 255.0, (tw, th), interpolation=cv2.INTER_CUBIC)
    img = (img - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32))[None]
    with torch.no_grad():
        depth = model(x)
    return F.interpolate(depth[None], (h, w), mode="bilinear", align_corners=align_corners)[0, 0].numpy()


@pytest.mark.parametrize("v1", [False, True])
def test_upsampling_rule_follows_the_release(tiny_model, rng, v1):
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    tiny_model.upsample_align_corners = not v1  # V1 presets: False (run.py), V2: True (infer_image)
    ours = tiny_model.infer_image(rgb, input_size=42)
    ref = _official_output(tiny_model, rgb, 42, 14, align_corners=not v1)
    other = _official_output(tiny_model, rgb, 42, 14, align_corners=v1)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    assert np.abs(ours - other).max() > 1e-4 * np.abs(ref).max()  # the two rules really differ here
    pred = Predictor(tiny_model, batch_size=2, input_size=42, progress=False, num_workers=0).predict([rgb])[0]
    np.testing.assert_array_equal(pred, ours)


def test_one_core_same_output_through_every_entry_point(tiny_model, rng, tmp_path):
    import lightning.pytorch as pl

    from da_toolkit.inference.data import InferenceData
    from da_toolkit.inference.task import DepthPredictionTask

    sizes = [(30, 40), (40, 30), (30, 40)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    folder = tmp_path / "in"
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i}.png")
    direct = [tiny_model.infer_image(im, input_size=28) for im in images]
    core = [predict_rgb(tiny_model, im, 28) for im in images]
    predictor = Predictor(tiny_model, batch_size=2, input_size=28, progress=False, num_workers=0).predict(images)

    from da_toolkit.models.weights import save_weights

    save_weights(tiny_model, tmp_path / "tiny.safetensors")
    from da_toolkit import load_model

    task = DepthPredictionTask(model=load_model(str(tmp_path / "tiny.safetensors")), keep_predictions=True)
    dm = InferenceData(str(folder), batch_size=2, num_workers=0, input_size=28)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)
    items = [it for batch in trainer.predict(task, datamodule=dm) for it in batch]
    by_id = {it.meta["id"]: it.depth for it in items}
    for i in range(len(images)):
        np.testing.assert_array_equal(core[i], direct[i])
        np.testing.assert_allclose(predictor[i], direct[i], rtol=1e-6, atol=1e-6)  # batched vs single forward
        np.testing.assert_allclose(by_id[str(i)], direct[i], rtol=1e-6, atol=1e-6)
    # the tensor entry point (torch bicubic instead of OpenCV) agrees closely
    x = torch.from_numpy(np.stack(images[::2])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        tensor_out = predict_tensor(tiny_model, x, input_size=28)
    scale = max(np.abs(direct[0]).max(), 1e-6)
    assert np.abs(tensor_out[0].numpy() - direct[0]).max() < 5e-3 * scale


def test_stride_32_cnn_model_is_served_at_multiples_of_32(rng):
    model = _cnn_model()
    assert input_multiple(model) == 32
    spy = _ShapeSpy(model).eval()
    rgb = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    out = Predictor(spy, batch_size=2, input_size=64, progress=False, num_workers=0).predict([rgb])[0]
    assert out.shape == (50, 70)
    assert spy.shapes == [(1, 3, 64, 96)]  # official lower-bound rule with multiple 32: 64x89.6 -> 64x96
    spy.shapes.clear()
    with torch.no_grad():
        pred = predict_tensor(spy, torch.rand(2, 3, 50, 70))  # native size: nearest multiples of 32
    assert pred.shape == (2, 50, 70) and spy.shapes == [(2, 3, 64, 64)]
    spy.shapes.clear()
    np.testing.assert_allclose(predict_rgb(spy, rgb, 64), out, rtol=1e-6, atol=1e-6)
    assert spy.shapes == [(1, 3, 64, 96)]


def test_network_size_rules():
    assert network_size(50, 70, 32) == (64, 64)
    assert network_size(10, 10, 32) == (32, 32)  # at least one multiple
    assert network_size(480, 640, 14, 518) == (518, 686)
    with pytest.raises(ValueError, match="max_pixels"):
        network_size(1000, 1000, 14, max_pixels=1000)
