"""Shared set-up of the registry contract tests: nothing may be downloaded."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _download_nothing(no_downloads: type[Exception]) -> None:
    """Every contract test runs under the suite's ``no_downloads`` guard (tests/conftest.py)."""


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
