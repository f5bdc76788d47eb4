"""Shared set-up of the registry contract tests: nothing may be downloaded."""

from __future__ import annotations

import socket

import pytest
import torch


class DownloadAttempt(RuntimeError):
    """A contract test tried to fetch weights (every model here is built with random weights)."""


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way smp/timm/torch.hub/Hugging Face could fetch weights raises, and so does any socket
    connect (the same paths ``tests/models/test_smp_*.py`` patch)."""

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


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
