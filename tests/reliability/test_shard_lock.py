"""Issue 13.8: a second pseudo-label writer on a shard is refused before it touches the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from da_toolkit.data.pseudo_store import (
    MANIFEST,
    PseudoLabelWriter,
    ShardBusyError,
    ShardLock,
    lock_shard,
    read_manifest,
)

SETTINGS = {"input_size": 14}


def test_loser_never_repairs_the_winners_half_appended_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    winner = PseudoLabelWriter(store, "rank000", "sha256:t", SETTINGS)
    winner.write("done-0", {"path": "a.png"}, np.ones((2, 3)))
    manifest = store / "rank000" / MANIFEST
    # the winner is in the middle of appending the next line (bytes flushed, no newline yet)
    line = json.dumps({"file": "xx/next.npy", "id": "next", "image_ref": {"path": "b.png"}, "shape": [2, 3]})
    winner._manifest.write(line[:20].encode())
    winner._manifest.flush()
    before = manifest.read_bytes()

    with pytest.raises(ShardBusyError) as info:
        PseudoLabelWriter(store, "rank000", "sha256:t", SETTINGS)
    assert manifest.read_bytes() == before  # the live manifest was not repaired (truncated) by the loser
    message = str(info.value)
    assert "\n" not in message and str(store / "rank000") in message

    winner._manifest.write(line[20:].encode() + b"\n")  # the winner completes its line
    winner._manifest.flush()
    winner.close()
    assert [e["id"] for e in read_manifest(store / "rank000")] == ["done-0", "next"]


def test_lock_shard_refuses_early_and_hands_over_to_the_writer(tmp_path: Path) -> None:
    store = tmp_path / "store"
    lock = lock_shard(store, "rank000")
    assert isinstance(lock, ShardLock) and lock.held
    with pytest.raises(ShardBusyError, match="another process"):
        lock_shard(store, "rank000")
    assert isinstance(ShardBusyError("x"), RuntimeError)  # callers catching RuntimeError still work
    with PseudoLabelWriter(store, "rank000", "sha256:t", SETTINGS, lock=lock) as writer:
        writer.write("a", {"path": "a.png"}, np.zeros((2, 2)))
    assert not lock.held  # the writer owned and released it
    lock_shard(store, "rank000").close()  # free again


def test_writer_rejects_a_lock_of_another_shard(tmp_path: Path) -> None:
    with lock_shard(tmp_path, "rank001") as other, pytest.raises(ValueError, match="lock="):
        PseudoLabelWriter(tmp_path, "rank000", "sha256:t", SETTINGS, lock=other)


def test_a_lock_held_by_another_process_is_refused_and_released_when_it_dies(tmp_path: Path) -> None:
    code = (
        "import sys, time; from da_toolkit.data.pseudo_store import lock_shard; "
        f"lock = lock_shard({str(tmp_path)!r}, 'rank000'); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(ShardBusyError):
            lock_shard(tmp_path, "rank000")
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
    deadline = time.monotonic() + 10
    while True:  # the OS drops the flock of a dead process
        try:
            lock_shard(tmp_path, "rank000").close()
            break
        except ShardBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
