"""Issue 14.6: files written atomically (temp file + rename) get the permissions of an ordinary write.

``tempfile.mkstemp`` creates ``0600`` files; renamed onto the final name unchanged, nobody else on
a shared cluster could read a pseudo-label store or a prediction. These tests write each kind of
output under a known umask and compare the mode with what ``open(path, "w")`` gives.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from da_toolkit.data.io import (
    atomic_open,
    atomic_path,
    atomic_save_npy,
    atomic_write_json,
    current_umask,
    ordinary_file_mode,
)
from da_toolkit.data.pseudo_store import MANIFEST, SHARD_HEADER, PseudoLabelWriter


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _plain_write_mode(folder: Path) -> int:
    """The mode an ordinary write gives a new file here (the independent reference)."""
    ref = folder / "ordinary-reference.txt"
    with open(ref, "w") as handle:
        handle.write("x")
    mode = _mode(ref)
    ref.unlink()
    return mode


def test_current_umask_reads_the_process_umask(umask: int) -> None:
    assert current_umask() == umask
    assert os.umask(umask) == umask  # reading it did not change it


def test_atomic_writers_give_new_files_the_ordinary_mode(tmp_path: Path, umask: int) -> None:
    expected = _plain_write_mode(tmp_path)
    assert expected == 0o666 & ~umask
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    atomic_save_npy(tmp_path / "b.npy", np.zeros((2, 2)))
    with atomic_open(tmp_path / "c.bin") as handle:
        handle.write(b"abc")
    with atomic_path(tmp_path / "d.png") as tmp:
        tmp.write_bytes(b"by-name writer")
    for name in ("a.json", "b.npy", "c.bin", "d.png"):
        assert _mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.npy", "c.bin", "d.png"]  # no temp left


def test_replacing_a_file_keeps_its_mode_like_an_ordinary_overwrite(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "kept.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    atomic_write_json(target, {"new": True})
    assert _mode(target) == 0o640
    assert ordinary_file_mode(target) == 0o640


def test_pseudo_label_store_files_are_readable_by_others_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with PseudoLabelWriter(tmp_path / "store", "rank000", "sha256:abc", {"input_size": 14}) as writer:
            writer.write("item-0", {"path": "img.png"}, np.ones((3, 4), np.float32))
    finally:
        os.umask(old)
    shard = tmp_path / "store" / "rank000"
    npys = list(shard.rglob("*.npy"))
    assert len(npys) == 1
    for path in (shard / SHARD_HEADER, shard / MANIFEST, npys[0]):
        assert _mode(path) == 0o644, path


def test_predict_outputs_get_the_ordinary_mode(tmp_path: Path, umask: int) -> None:
    from da_toolkit.inference.png16 import write_png16
    from da_toolkit.inference.pointcloud import write_ply

    expected = 0o666 & ~umask
    write_png16(tmp_path / "d.png", np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4))
    write_ply(tmp_path / "p.ply", np.zeros((5, 3), np.float32))
    assert _mode(tmp_path / "d.png") == expected
    assert _mode(tmp_path / "p.ply") == expected


def test_saved_run_config_gets_the_ordinary_mode(tmp_path: Path, umask: int) -> None:
    """The CLI rewrites the resolved config with its header through an atomic write."""
    from da_toolkit.cli.lightning_cli import SAVED_CONFIG_HEADER, SafeSaveConfigCallback

    cfg = tmp_path / "config.yaml"
    cfg.write_text("seed_everything: 1\n")  # what Lightning's SaveConfigCallback wrote
    callback = SafeSaveConfigCallback.__new__(SafeSaveConfigCallback)  # only save_config is exercised
    callback._target = cfg
    callback.save_config(None, None, "fit")  # type: ignore[arg-type]
    assert cfg.read_text().startswith(SAVED_CONFIG_HEADER)
    assert _mode(cfg) == 0o666 & ~umask
