"""Fixtures of the shard tests: tiny synthetic shards and a local S3 server (moto)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from da_toolkit.data.shards.convert import pack_source
from da_toolkit.data.sources.synthetic import SyntheticScenes

SIZE = (12, 16)


def tiny_source(length: int = 23, labeled: bool = True, seed: int = 0) -> SyntheticScenes:
    """A tiny synthetic world (12x16 pixels)."""
    return SyntheticScenes(length=length, size=SIZE, labeled=labeled, seed=seed)


@pytest.fixture
def make_source():
    """:func:`tiny_source` as a fixture."""
    return tiny_source


@pytest.fixture
def rgbd_shards(tmp_path: Path) -> tuple[Path, SyntheticScenes]:
    """23 labeled samples in 5 PNG shards (5 5 5 5 3) under ``tmp_path/rgbd`` (+ index)."""
    src = tiny_source(23)
    pack_source(src, str(tmp_path / "rgbd"), prefix="syn", maxcount=5, image_format="png", progress=False)
    return tmp_path / "rgbd", src


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_server() -> Any:
    """A moto S3 server on 127.0.0.1 (free port) with bucket ``shards``; yields fsspec options."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                              region_name="us-east-1")
        client.create_bucket(Bucket="shards")
        yield {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    finally:
        server.stop()
