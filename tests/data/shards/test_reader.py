"""The shard reader: member skipping, stream vs seekable access, plain ustar headers, the folder's decoding."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.io import decode_rgb, read_rgb
from da_toolkit.data.shards import ShardedRGBD, ShardWriter
from da_toolkit.data.shards import stream as S
from da_toolkit.data.shards.codec import decode_image
from da_toolkit.data.shards.stream import count_samples, iter_raw_samples, iter_shard


def _shard(rgbd_shards) -> str:
    root, _ = rgbd_shards
    return str(root / "syn-000000.tar")  # 5 samples, 5 members each


def _count_reads(monkeypatch) -> list[str]:
    reads: list[str] = []
    real = S._read_member

    def counting(tar, info, seekable):
        reads.append(info.name)
        return real(tar, info, seekable)

    monkeypatch.setattr(S, "_read_member", counting)
    return reads


def test_iter_shard_range_equals_the_slice_of_a_full_read(rgbd_shards):
    url = _shard(rgbd_shards)
    full = list(iter_raw_samples(url))
    assert [s["__key__"] for s in full] == [f"{i:09d}" for i in range(5)]
    for first, last in ((0, None), (2, None), (1, 3), (4, 5), (3, 3), (5, None)):
        got = list(iter_shard(url, first=first, last=last))
        assert [n for n, _ in got] == list(range(first, 5 if last is None else last))
        assert [raw for _, raw in got] == full[first:last]


def test_samples_before_first_are_not_read(rgbd_shards, monkeypatch):
    url = _shard(rgbd_shards)
    reads = _count_reads(monkeypatch)
    got = list(iter_shard(url, first=3, last=4))
    assert [n for n, _ in got] == [3]
    assert sorted(reads) == sorted(f"000000003.{ext}" for ext in ("png", "depth.npy", "valid.png", "seg.png", "json"))
    reads.clear()
    assert count_samples(url) == 5 and reads == []  # counting reads headers only


def test_streamed_access_gives_the_same_samples(rgbd_shards, monkeypatch):
    url = _shard(rgbd_shards)
    seekable = list(iter_shard(url, first=1))
    monkeypatch.setattr(S.U, "is_local", lambda u: False)  # fsspec, streamed (r|*), as for s3:// URLs
    reads = _count_reads(monkeypatch)
    streamed = list(iter_shard(url, first=1))
    assert streamed == seekable
    assert len(reads) == 4 * 5  # sample 0's members passed over unread
    assert all(not r.startswith("000000000.") for r in reads)


def test_duplicate_member_is_an_error_naming_the_shard(tmp_path):
    path = tmp_path / "dup.tar"
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in ("a.jpg", "a.jpg"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(ValueError, match=r"dup\.tar: member a\.jpg appears twice"):
        list(iter_shard(str(path)))


def test_shards_have_no_pax_headers(rgbd_shards):
    """A float mtime made tarfile add a PAX header (1 KiB, parsed by every reader) to every member."""
    url = _shard(rgbd_shards)
    with tarfile.open(url) as tar:
        members = tar.getmembers()
    assert len(members) == 25 and all(m.pax_headers == {} for m in members)
    # ustar only: one 512-byte header per member, data padded to 512, two zero end blocks (then
    # tarfile's padding to its 10 KiB record)
    size = sum(512 + -(-m.size // 512) * 512 for m in members) + 1024
    assert Path(url).stat().st_size == -(-size // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def test_data_truncated_inside_a_member_makes_the_rest_bad(rgbd_shards, caplog):
    root, _ = rgbd_shards
    shard = root / "syn-000001.tar"
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1]  # sample 4's json member (shard 1 = samples 5..9)
    data = shard.read_bytes()
    shard.write_bytes(data[: last.offset_data + max(1, last.size // 2)])  # its header intact, data cut
    ds = ShardedRGBD(index=str(root / "syn.index.json"), shuffle=False)
    ids = [s["meta"]["id"] for s in ds]
    assert len(ids) == 23 and ds.skipped == 1  # only the sample whose member is cut
    assert "syn-000001.tar" in caplog.text and "unexpected end of data" in caplog.text


def _png_bytes(arr: np.ndarray, exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    img.save(buf, format="PNG", **({"exif": exif} if exif is not None else {}))
    return buf.getvalue()


def test_shard_decoding_is_the_folder_decoding(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels are shown rotated 90 degrees clockwise
    gray16 = rng.integers(0, 65536, (6, 10), dtype=np.uint16)
    rgba = rng.integers(0, 256, (6, 10, 4), dtype=np.uint8)
    cases = {
        "rotated": (_png_bytes(rgb, exif), np.rot90(rgb, k=-1)),
        "gray16": (_png_bytes(gray16), np.repeat((gray16 // 257).astype(np.uint8)[..., None], 3, axis=2)),
        "rgba": (_png_bytes(rgba), rgba[..., :3]),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        from_shard = decode_image(data, f"shard:{name}")
        np.testing.assert_array_equal(from_shard, expected, err_msg=name)
        np.testing.assert_array_equal(read_rgb(path), from_shard, err_msg=name)
        assert from_shard.dtype == np.uint8 and from_shard.flags.c_contiguous


def test_undecodable_bytes_name_the_member():
    from da_toolkit.data.errors import SampleReadError

    with pytest.raises(SampleReadError, match="s-000000.tar:000000004.*not a recognised image"):
        decode_rgb(b"not an image", "s-000000.tar:000000004")
    with pytest.raises(SampleReadError, match="empty"):
        decode_image(b"", "s-000000.tar:000000004")


def test_writer_round_trips_bytes_exactly(tmp_path):
    blobs = [bytes(np.random.default_rng(i).integers(0, 256, 700 + i, dtype=np.uint8)) for i in range(3)]
    with ShardWriter(str(tmp_path), "b", maxcount=10) as writer:
        for i, b in enumerate(blobs):
            writer.write(str(i), {"bin": b, "json": b"{}"})
    got = [raw["bin"] for _, raw in iter_shard(str(tmp_path / "b-000000.tar"))]
    assert got == blobs
