"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket

import pytest
import torch


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
