"""Perturbations run on the training device: CPU-sampled params applied to device batches.

Skipped without CUDA (CI machines with a GPU run it).
"""

from __future__ import annotations

import pytest
import torch

from da_toolkit.perturb import CutMix, StrongPhotometric

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_photometric_on_the_device_matches_the_cpu_result() -> None:
    x = torch.rand(6, 3, 24, 28, generator=torch.Generator().manual_seed(0))
    strong = StrongPhotometric(seed=3, jitter_p=1.0, blur_p=1.0)
    y_gpu = strong(x.cuda())
    assert y_gpu.device.type == "cuda"
    y_cpu = strong.apply(x, strong.last_params)  # replay of the same params on the CPU
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-4, rtol=0)


def test_cutmix_on_the_device() -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = CutMix(p=1.0, seed=2)(x.cuda())
    assert out.mixed.device.type == out.mask.device.type == out.pairing.device.type == "cuda"
    ref = CutMix(p=1.0, seed=2)(x)
    assert torch.equal(out.mixed.cpu(), ref.mixed) and torch.equal(out.mask.cpu(), ref.mask)
