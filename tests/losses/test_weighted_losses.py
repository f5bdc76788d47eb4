"""WeightedLosses: weighted total, named terms, and building from a YAML recipe."""

from __future__ import annotations

import pytest
import torch
from jsonargparse import ArgumentParser

from da_toolkit.losses import AffineInvariantLoss, GradientMatchingLoss, WeightedLosses


def test_total_is_the_weighted_sum_and_terms_are_unweighted() -> None:
    pred = torch.rand(2, 8, 8, requires_grad=True)
    target, mask = torch.rand(2, 8, 8), torch.rand(2, 8, 8) > 0.2
    loss = WeightedLosses({"ssi": AffineInvariantLoss(), "gm": GradientMatchingLoss()}, {"gm": 2.0})
    out = loss(pred, target, mask)
    ssi = AffineInvariantLoss()(pred, target, mask)
    gm = GradientMatchingLoss()(pred, target, mask)
    torch.testing.assert_close(out.total, ssi + 2.0 * gm)
    torch.testing.assert_close(out.terms["ssi"], ssi.detach())
    torch.testing.assert_close(out.terms["gm"], gm.detach())
    out.total.backward()
    assert pred.grad is not None and not out.terms["gm"].requires_grad


def test_bad_configurations_are_reported() -> None:
    with pytest.raises(ValueError, match="unknown terms"):
        WeightedLosses({"ssi": AffineInvariantLoss()}, {"gm": 2.0})
    with pytest.raises(ValueError, match="'a.b'"):
        WeightedLosses({"a.b": AffineInvariantLoss()})
    with pytest.raises(ValueError, match="at least one"):
        WeightedLosses({})


def test_builds_from_a_yaml_recipe() -> None:
    parser = ArgumentParser()
    parser.add_argument("--loss", type=WeightedLosses)
    cfg = parser.parse_string(
        """
loss:
  class_path: da_toolkit.losses.WeightedLosses
  init_args:
    terms:
      ssi: {class_path: da_toolkit.losses.AffineInvariantLoss, init_args: {trim: 0.1}}
      gm: {class_path: da_toolkit.losses.GradientMatchingLoss, init_args: {scales: 2}}
    weights: {ssi: 1.0, gm: 2.0}
"""
    )
    loss = parser.instantiate(cfg).loss
    assert isinstance(loss, WeightedLosses)
    assert loss.weights == {"ssi": 1.0, "gm": 2.0}
    assert loss.terms["ssi"].trim == 0.1 and loss.terms["gm"].scales == 2
