"""The converter: any registered source -> shards; progress; resumable after a crash."""

from __future__ import annotations

import json

import pytest

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.shards import ShardedRGBD
from da_toolkit.data.shards.convert import main, pack_source


class _Crashing:
    """A source that dies (not a bad sample: a crash) at item ``crash_at``."""

    def __init__(self, inner, crash_at: int) -> None:
        self.inner, self.crash_at, self.calls = inner, crash_at, []

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        self.calls.append(i)
        if i == self.crash_at:
            raise RuntimeError("killed")
        return self.inner[i]


def test_main_packs_a_registered_source(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--source", "synthetic", "--init_args", json.dumps({"length": 7, "size": [12, 16]}),
            "--out", str(out), "--prefix", "syn", "--maxcount", "3", "--image_format", "png"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"shards": 3, "samples": 7, "skipped": 0, "reused": 0}
    ds = ShardedRGBD(index=str(out / "syn.index.json"))
    assert sorted(s["meta"]["id"] for s in ds) == [f"seed0/{i:08d}" for i in range(7)]
    # second run: everything is reused, nothing rewritten
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")}
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["reused"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar")} == mtimes


def test_main_rejects_unknown_source_and_bad_json(tmp_path, capsys):
    assert main(["--source", "no_such_source", "--out", str(tmp_path)]) == 2
    assert "no_such_source" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--source", "synthetic", "--init_args", "{bad", "--out", str(tmp_path)])


def test_resume_after_crash_skips_finished_shards_and_redoes_the_partial_one(tmp_path, make_source):
    src = make_source(10)
    crashing = _Crashing(src, crash_at=7)
    with pytest.raises(RuntimeError, match="killed"):
        pack_source(crashing, str(tmp_path), prefix="p", maxcount=3, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p-000000.tar", "p-000001.tar", "p.index.json"]  # no partial file
    again = _Crashing(src, crash_at=-1)
    result = pack_source(again, str(tmp_path), prefix="p", maxcount=3, progress=False)
    assert result == {"shards": 4, "samples": 10, "skipped": 0, "reused": 2}
    assert again.calls == [6, 7, 8, 9]  # finished shards were not re-read
    ids = [s["meta"]["id"] for s in ShardedRGBD(index=str(tmp_path / "p.index.json"))]
    assert sorted(ids) == [f"seed0/{i:08d}" for i in range(10)]


def test_resume_refuses_other_settings(tmp_path, make_source):
    pack_source(make_source(4), str(tmp_path), prefix="p", maxcount=2, progress=False)
    with pytest.raises(ValueError, match="maxcount"):
        pack_source(make_source(4), str(tmp_path), prefix="p", maxcount=3, progress=False)


def test_bad_items_are_reported_and_skipped(tmp_path, make_source, caplog):
    class _Bad(_Crashing):
        def __getitem__(self, i):
            if i == 1:
                raise SampleReadError("img1.png", "corrupt")
            return self.inner[i]

    result = pack_source(_Bad(make_source(4), -1), str(tmp_path), prefix="p", maxcount=2, progress=False)
    assert result["skipped"] == 1 and result["samples"] == 3 and result["shards"] == 2
    assert "img1.png: corrupt" in caplog.text


def test_a_shard_of_only_bad_items_keeps_the_numbering(tmp_path, make_source):
    class _AllBadFirst(_Crashing):
        def __getitem__(self, i):
            if i < 2:
                raise SampleReadError(f"img{i}.png", "corrupt")
            return self.inner[i]

    result = pack_source(_AllBadFirst(make_source(5), -1), str(tmp_path), prefix="p", maxcount=2, progress=False)
    assert result == {"shards": 3, "samples": 3, "skipped": 2, "reused": 0}
    ds = ShardedRGBD(index=str(tmp_path / "p.index.json"))
    assert [n for _, n in ds.shards] == [0, 2, 1]
    assert sorted(s["meta"]["id"] for s in ds) == [f"seed0/{i:08d}" for i in range(2, 5)]
