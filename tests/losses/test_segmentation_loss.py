"""SegmentationHead and SegmentationLoss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from da_toolkit.losses import SegmentationHead, SegmentationLoss


def test_uniform_logits_give_log_k() -> None:
    logits = torch.zeros(2, 4, 3, 3)
    target = torch.randint(0, 4, (2, 3, 3))
    assert SegmentationLoss()(logits, target).item() == pytest.approx(math.log(4), rel=1e-6)


def test_matches_numpy_cross_entropy_per_sample_with_ignore() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 4, 4, generator=g)
    target = torch.randint(0, 5, (2, 4, 4), generator=g)
    target[0, :3] = 255  # sample 0 has 4 labeled pixels, sample 1 has 16
    lg = logits.double().numpy()
    logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
    per_sample = []
    for b in range(2):
        vals = [-logp[b, target[b, i, j], i, j] for i in range(4) for j in range(4) if target[b, i, j] != 255]
        per_sample.append(np.mean(vals))
    got = SegmentationLoss()(logits, target).item()
    assert got == pytest.approx(float(np.mean(per_sample)), rel=1e-5)


def test_all_ignored_gives_zero_that_backpropagates_and_bad_labels_error() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = SegmentationLoss()(logits, torch.full((1, 2, 2), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))
    with pytest.raises(ValueError, match="labels"):
        SegmentationLoss()(logits, torch.full((1, 2, 2), 7))


def test_head_maps_multilevel_features_to_logits_at_image_size() -> None:
    head = SegmentationHead([8, 16], num_classes=6, hidden=8)
    feats = [torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
    logits = head(feats, (28, 28))
    assert logits.shape == (2, 6, 28, 28)
    loss = SegmentationLoss()(logits, torch.randint(0, 6, (2, 28, 28)))
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())
    with pytest.raises(ValueError, match="level 1"):
        head([feats[0], torch.randn(2, 8, 2, 2)], (28, 28))
    with pytest.raises(ValueError, match="levels"):
        head(feats[:1], (28, 28))
