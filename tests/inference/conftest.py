import numpy as np
import pytest
import torch
from torch import nn

from da_toolkit.models.preprocess import prepare_image, upsample_prediction


class TinyDepthNet(nn.Module):
    """Throwaway stand-in following the DepthModel contract (patch 14, ReLU disparity head)."""

    output_kind = "disparity"

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 14, stride=14)
        self.head = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        f = torch.relu(self.embed(x))
        y = self.head(f)
        y = nn.functional.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return torch.relu(y[:, 0] + 1.0)

    @torch.no_grad()
    def infer_image(self, rgb, input_size=518):
        x = prepare_image(rgb, input_size)
        return upsample_prediction(self(x), rgb.shape[:2])[0].numpy()


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyDepthNet().eval()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
