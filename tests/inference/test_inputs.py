import numpy as np
import pytest
from PIL import Image

from da_toolkit.data.io import atomic_path
from da_toolkit.inference.data import InferenceData
from da_toolkit.inference.datasets import BucketBatchSampler, header_size
from da_toolkit.inference.inputs import discover_inputs
from da_toolkit.plugins import get_component


def _touch_image(path, size=(10, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)


def test_discover_folder_glob_file(tmp_path):
    _touch_image(tmp_path / "in" / "a.png")
    _touch_image(tmp_path / "in" / "deep" / "er" / "b.JPG")
    (tmp_path / "in" / "clip.mp4").write_bytes(b"x")
    (tmp_path / "in" / "readme.txt").write_text("no")
    (tmp_path / "in" / ".hidden.png").write_bytes(b"x")
    found = discover_inputs(str(tmp_path / "in"))
    assert [(f.id, f.is_video) for f in found] == [("a", False), ("clip", True), ("deep/er/b", False)]
    globbed = discover_inputs(str(tmp_path / "in" / "**" / "*.JPG"))
    assert [f.id for f in globbed] == ["deep/er/b"]
    single = discover_inputs(str(tmp_path / "in" / "deep" / "er" / "b.JPG"))
    assert [f.id for f in single] == ["b"]


def test_discover_errors_name_the_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        discover_inputs(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no image"):
        discover_inputs(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="matched no"):
        discover_inputs(str(tmp_path / "*.png"))
    _touch_image(tmp_path / "x" / "a.png")
    _touch_image(tmp_path / "y" / "a.jpg")
    with pytest.raises(ValueError, match="same outputs"):
        discover_inputs([str(tmp_path / "x"), str(tmp_path / "y")])


def test_header_size_applies_exif_rotation(tmp_path):
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert header_size(tmp_path / "r.jpg") == (30, 10)
    (tmp_path / "bad.jpg").write_bytes(b"zz")
    assert header_size(tmp_path / "bad.jpg") is None


def test_bucket_batch_sampler_follows_its_sampler():
    keys = ["a", "b", "a", "b", "a"]
    assert list(BucketBatchSampler(range(5), 2, keys=keys)) == [[0, 2], [4], [1, 3]]
    # a distributed-style subset of indices keeps bucketing within the subset
    assert list(BucketBatchSampler([1, 2, 3, 4], 4, keys=keys)) == [[1, 3], [2, 4]]
    assert len(BucketBatchSampler(range(5), 2, drop_last=True, keys=keys)) == 2


def test_inference_data_skips_done_items(tmp_path):
    for name in ("a", "b", "c"):
        _touch_image(tmp_path / "in" / f"{name}.png")
    dm = InferenceData(str(tmp_path / "in"), batch_size=2, num_workers=0, input_size=14, input_multiple=14)
    dm.add_done_filter(lambda meta: meta["id"] == "b")
    dm.setup("predict")
    (loader,) = dm.predict_dataloader()
    ids = [m["id"] for batch in loader for m in batch["meta"]]
    assert ids == ["a", "c"] and dm.skipped == 1
    with pytest.raises(ValueError, match="batch_size"):
        InferenceData("x", batch_size=0)


def test_writers_registered_by_short_name():
    from da_toolkit.inference.writers import ColormapWriter, NpyWriter

    assert get_component("writers", "npy") is NpyWriter
    assert get_component("writers", "colormap") is ColormapWriter


def test_atomic_path_keeps_target_on_error(tmp_path):
    target = tmp_path / "out.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]
