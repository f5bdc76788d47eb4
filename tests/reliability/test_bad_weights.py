"""Issues 13.6 and 13.7: corrupt vs unsafe pickles, and zip records torch.load must never inflate.

* 13.6: random bytes in a ``.pth`` are "corrupt or not a checkpoint" (a ``WeightsError`` that is
  not an ``UnsafeCheckpointError``); only a pickle that references a disallowed global - through
  ``GLOBAL``, ``INST`` or protocol-4 ``STACK_GLOBAL`` - is "unsafe", and nothing of it runs.
* 13.7: a compressed record (zip bomb) and a record larger than the storage the pickle declares
  are refused before ``torch.load`` reads anything.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from da_toolkit.models.weights import UnsafeCheckpointError, WeightsError, read_weights

pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol")
from da_toolkit.models.weights.safe import (
    check_torch_archive,
    read_torch,
    referenced_globals,
)


def _garbage(rng: np.random.Generator) -> bytes:
    size = int(rng.integers(1, 4096))
    data = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    start = int(rng.integers(0, 4))  # also garbage that starts like a pickle or like GLOBAL
    return [b"", b"\x80\x02", b"c", b"\x80\x04\x95"][start] + data


def test_random_bytes_are_corrupt_not_unsafe(tmp_path: Path) -> None:
    rng = np.random.default_rng(1234)
    junk = tmp_path / "junk.pth"
    for _ in range(300):
        junk.write_bytes(_garbage(rng))
        with pytest.raises(WeightsError) as info:
            read_torch(junk)
        assert not isinstance(info.value, UnsafeCheckpointError), str(info.value)
        text = str(info.value)
        assert str(junk) in text and "corrupt or not a checkpoint" in text
        assert "could run code" not in text and "weights_only=False" not in text


def test_garbage_that_happens_to_spell_a_global_is_not_unsafe() -> None:
    # GLOBAL opcode followed by random non-identifier bytes: not a reference to any Python object
    import io

    assert referenced_globals(io.BytesIO(b"c\xff\x01 \n\x99\x88\n.")) == set()
    assert referenced_globals(io.BytesIO(b"cos\nsystem\n.")) == {"os.system"}


def _touch(marker: str) -> None:
    Path(marker).touch()


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_touch, (self.marker,))


@pytest.mark.parametrize("writer", ["torch-zip", "torch-legacy", "pickle-0", "pickle-2", "pickle-4"])
def test_a_pickle_referencing_a_disallowed_global_is_unsafe_and_never_runs(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"pretrained.cls_token": torch.zeros(1), "x": _Exploit(str(marker))}
    if writer == "torch-zip":
        torch.save(payload, path)
    elif writer == "torch-legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    with pytest.raises(UnsafeCheckpointError) as info:
        read_torch(path)
    assert "test_bad_weights._touch" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Exploit(str(marker))))  # the payload is real: unrestricted unpickling runs it
    assert marker.exists()


def _rewrite(src: Path, dst: Path, replace: dict[str, tuple[bytes, int]]) -> None:
    """Copy a torch zip archive, replacing records: name -> (data, compress_type)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data, method = replace.get(info.filename, (zin.read(info.filename), zipfile.ZIP_STORED))
            zout.writestr(zipfile.ZipInfo(info.filename), data, compress_type=method)


def _tensor_record(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return next(n for n in z.namelist() if "/data/" in n)


@pytest.fixture
def forbid_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any torch.load or inflation of a zip record fails the test (the refusal must come first)."""

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called on a file that should have been refused")

    real_read = zipfile.ZipFile.read

    def read_small(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, pwd: bytes | None = None) -> bytes:
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            raise AssertionError(f"a compressed record was inflated: {info.filename}")
        return real_read(self, name, pwd)

    monkeypatch.setattr(torch, "load", no_load)
    monkeypatch.setattr(zipfile.ZipFile, "read", read_small)


def test_a_compressed_record_is_refused_before_anything_is_inflated(tmp_path: Path, forbid_reading: None) -> None:
    good = tmp_path / "good.pth"
    torch.save({"pretrained.cls_token": torch.zeros(3)}, good)
    bomb = tmp_path / "bomb.pth"
    record = _tensor_record(good)
    _rewrite(good, bomb, {record: (bytes(64 << 20), zipfile.ZIP_DEFLATED)})  # 64 MiB of zeros, ~64 KB on disk
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(WeightsError, match="compressed") as info:
        read_weights(bomb)
    assert str(bomb) in str(info.value) and record in str(info.value)


def test_a_record_larger_than_its_declared_storage_is_refused(tmp_path: Path, forbid_reading: None) -> None:
    good = tmp_path / "good.pth"
    torch.save({"pretrained.cls_token": torch.zeros(3)}, good)  # declares 12 bytes
    big = tmp_path / "big.pth"
    record = _tensor_record(good)
    _rewrite(good, big, {record: (bytes(1 << 20), zipfile.ZIP_STORED)})
    with pytest.raises(WeightsError, match="holds 1048576 bytes but its storage declares 12 bytes"):
        read_torch(big)


def test_ordinary_checkpoints_pass_the_archive_checks(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32)
    obj = {
        "state_dict": {"a": base, "view": base[2:5], "bf16": torch.ones(2, 3, dtype=torch.bfloat16),
                       "i64": torch.arange(4), "empty": torch.zeros(0), "bool": torch.ones(2, dtype=torch.bool)},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(5)}}, "param_groups": [{"lr": 0.1}]}],
        "global_step": 3,
    }
    path = tmp_path / "ok.ckpt"
    torch.save(obj, path)
    check_torch_archive(path)  # no error
    back = read_torch(path)
    assert torch.equal(back["state_dict"]["view"], base[2:5]) and back["global_step"] == 3
