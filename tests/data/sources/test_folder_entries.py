"""Issue 13.4 / 13.3 for the ``image_folder`` source: entries named like images that are not
regular files are per-file errors naming them; directory links are never followed; no file
is listed twice."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.sources import ImageFolder, PairedFolder


def _save(path, rng, shape=(12, 16, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


@pytest.fixture
def alarm():
    """Fail instead of hanging if a FIFO is ever opened (opening one blocks)."""
    def _timeout(signum, frame):
        raise AssertionError("a FIFO was opened (the read blocked)")

    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_non_regular_image_entries_are_named_per_file_errors(tmp_path, alarm):
    rng = np.random.default_rng(0)
    _save(tmp_path / "ok.png", rng)
    os.symlink("missing.png", tmp_path / "dangling.png")
    os.symlink("looped.png", tmp_path / "looped.png")
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "notes.txt").write_text("not an image")

    src = ImageFolder(tmp_path)
    names = [p.name for p in src.files]
    assert names == ["dangling.png", "looped.png", "ok.png", "pipe.jpg"]  # none dropped silently
    reasons = {"dangling.png": "dangling symbolic link -> missing.png", "looped.png": "symbolic link loop",
               "pipe.jpg": "FIFO"}
    for i, name in enumerate(names):
        if name == "ok.png":
            assert src[i]["image"].shape == (12, 16, 3) and src[i]["meta"]["id"] == "ok.png"
            continue
        with pytest.raises(SampleReadError) as info:
            src[i]
        message = str(info.value)
        assert name in message and reasons[name] in message and "not a regular file" in message

    # a file list naming a FIFO: the same per-file error, never opened
    listed = ImageFolder(tmp_path, files=["pipe.jpg"])
    with pytest.raises(SampleReadError, match="FIFO"):
        listed[0]


def test_directory_links_are_not_followed_and_no_file_is_listed_twice(tmp_path):
    rng = np.random.default_rng(1)
    _save(tmp_path / "b.png", rng)
    _save(tmp_path / "sub" / "c.png", rng)
    os.symlink("b.png", tmp_path / "b_again.png")  # a second name of b.png
    os.symlink("sub", tmp_path / "alias")  # a directory link inside the tree
    os.symlink("..", tmp_path / "sub" / "up")  # a loop back into the tree
    with pytest.warns(UserWarning) as record:
        src = ImageFolder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in src.files] == ["b.png", "sub/c.png"]
    text = " ".join(str(w.message) for w in record)
    assert "directory links are not followed" in text and "alias -> sub" in text
    assert "up -> .. (a loop back into the tree)" in text
    assert "b_again.png (same file as" in text and "found twice" in text
    assert len({src[i]["meta"]["id"] for i in range(len(src))}) == 2

    flat = ImageFolder(tmp_path, recursive=False)
    assert [p.name for p in flat.files] == ["b.png"]


def test_paired_folder_names_non_regular_rgb_entries(tmp_path, alarm):
    rng = np.random.default_rng(2)
    _save(tmp_path / "rgb" / "a.png", rng)
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.full((12, 16), 1000, dtype=np.uint16)).save(tmp_path / "depth" / "a.png")
    Image.fromarray(np.full((12, 16), 1000, dtype=np.uint16)).save(tmp_path / "depth" / "p.png")
    os.mkfifo(tmp_path / "rgb" / "p.png")
    with pytest.warns(UserWarning, match=r"p\.png: not a regular file \(a FIFO\)"):
        src = PairedFolder(tmp_path)
    assert len(src) == 1 and src[0]["meta"]["id"] == "a"
