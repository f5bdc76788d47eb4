"""The built-in metric is registered under its short name."""

from __future__ import annotations

from da_toolkit.metrics import DepthMetrics
from da_toolkit.plugins import get_component


def test_registered() -> None:
    assert get_component("metrics", "depth_metrics") is DepthMetrics
