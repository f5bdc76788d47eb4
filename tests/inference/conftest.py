import numpy as np
import pytest

from da_toolkit.models.tiny import build_tiny_model


@pytest.fixture
def tiny_model():
    import torch

    torch.manual_seed(0)
    return build_tiny_model().eval()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
