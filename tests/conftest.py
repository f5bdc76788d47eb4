"""Fixtures shared by the whole suite."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_every_test() -> None:
    """Each test starts from the same random state (torch, numpy, random), whatever ran before it
    and whichever subset runs: a failure reproduces with ``pytest path::test``."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - the legacy global state that code under test may use
    random.seed(0)


class DownloadAttempt(RuntimeError):
    """A test tried to fetch weights (every model of the suite is built with random or local weights)."""


@pytest.fixture
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> type[DownloadAttempt]:
    """Make every way smp/timm/torch.hub/Hugging Face could fetch weights raise, and any socket
    connect too; returns the exception type they raise."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise DownloadAttempt(f"download attempted: {args[:1]}")

    import huggingface_hub
    import segmentation_models_pytorch as smp
    import timm.models._builder as timm_builder

    monkeypatch.setattr(smp.encoders, "hf_hub_download", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    monkeypatch.setattr(timm_builder, "load_pretrained", refuse)
    monkeypatch.setattr(timm_builder, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return DownloadAttempt
