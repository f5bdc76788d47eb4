"""DermoscopyImages: ISIC-style folder + metadata CSV, filtering, and errors naming file/line/column."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from da_toolkit.data.errors import SampleReadError
from da_toolkit_dermoscopy import DermoscopyImages, MetadataError


def write_image(path: Path, value: int, size: tuple[int, int] = (6, 8)) -> np.ndarray:
    """An RGB image whose pixels encode ``value`` (so tests can tell images apart)."""
    arr = np.zeros((*size, 3), dtype=np.uint8)
    arr[..., 0] = value
    arr[..., 1] = np.arange(size[1], dtype=np.uint8)[None, :]
    arr[..., 2] = 7
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def isic(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """ISIC 2020-like: images/ISIC_000000{0..4}.png (one in a sub-folder) + metadata.csv."""
    images = tmp_path / "images"
    arrays = {}
    for i in range(5):
        sub = images / "part2" if i == 4 else images
        arrays[f"ISIC_000000{i}"] = write_image(sub / f"ISIC_000000{i}.png", 10 * i)
    sites = ["head/neck", "torso", "torso", "lower extremity", "head/neck"]
    rows = [[f"ISIC_000000{i}", f"P{i % 2}", sites[i], "benign" if i % 2 else "malignant"] for i in range(5)]
    csv_path = write_csv(tmp_path / "metadata.csv", ["image_name", "patient_id", "anatom_site", "benign_malignant"], rows)
    return images, csv_path, arrays


def test_csv_rows_in_order_with_sample_contract(isic) -> None:
    images, csv_path, arrays = isic
    source = DermoscopyImages(images, csv_path)
    assert isinstance(source, torch.utils.data.Dataset)
    assert len(source) == 5 and source.ids == [f"ISIC_000000{i}" for i in range(5)]
    sample = source[4]
    assert sample["image"].dtype == np.uint8 and sample["image"].shape == (6, 8, 3)
    np.testing.assert_array_equal(sample["image"], arrays["ISIC_0000004"])
    assert "depth" not in sample and "valid" not in sample  # unlabeled
    meta = sample["meta"]
    assert meta["source"] == "dermoscopy" and meta["id"] == "ISIC_0000004"
    assert Path(meta["image_ref"]["path"]) == (images / "part2" / "ISIC_0000004.png").resolve()
    assert meta["metadata"]["anatom_site"] == "head/neck"
    np.testing.assert_array_equal(source[-1]["image"], sample["image"])
    with pytest.raises(IndexError):
        source[5]


@pytest.mark.parametrize("column", ["isic_id", "image_name", "image_id", "image"])
def test_id_column_auto_detected(tmp_path: Path, column: str) -> None:
    write_image(tmp_path / "im" / "ISIC_1.PNG", 1)  # upper-case extension
    write_image(tmp_path / "im" / "ISIC_2.png", 2)
    csv_path = write_csv(tmp_path / "m.csv", ["other", column], [["x", "ISIC_2"], ["y", "ISIC_1.PNG"]])
    source = DermoscopyImages(tmp_path / "im", csv_path)
    assert source.ids == ["ISIC_2", "ISIC_1.PNG"]
    assert int(source[1]["image"][0, 0, 0]) == 1


def test_explicit_id_column_and_bom(tmp_path: Path) -> None:
    write_image(tmp_path / "im" / "a.png", 1)
    (tmp_path / "m.csv").write_text("\ufefflesion,file\nL1,a\n", encoding="utf-8")
    source = DermoscopyImages(tmp_path / "im", tmp_path / "m.csv", id_column="file")
    assert source.ids == ["a"] and source[0]["meta"]["metadata"] == {"lesion": "L1", "file": "a"}


def test_include_and_exclude_filters(isic) -> None:
    images, csv_path, _ = isic
    kept = DermoscopyImages(images, csv_path, include={"anatom_site": ["torso", "head/neck"]})
    assert kept.ids == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002", "ISIC_0000004"]
    both = DermoscopyImages(images, csv_path, include={"anatom_site": "torso", "benign_malignant": "benign"})
    assert both.ids == ["ISIC_0000001"]
    dropped = DermoscopyImages(images, csv_path, exclude={"patient_id": ["P0"]})
    assert dropped.ids == ["ISIC_0000001", "ISIC_0000003"]


def test_no_csv_uses_every_image(isic) -> None:
    images, _, arrays = isic
    (images / "notes.txt").write_text("not an image")
    source = DermoscopyImages(images)
    assert source.ids == [f"ISIC_000000{i}.png" for i in range(4)] + ["part2/ISIC_0000004.png"]
    np.testing.assert_array_equal(source[2]["image"], arrays["ISIC_0000002"])


def test_missing_image_error_names_csv_line_and_column(isic) -> None:
    images, csv_path, _ = isic
    (images / "ISIC_0000002.png").unlink()
    with pytest.raises(MetadataError) as info:
        DermoscopyImages(images, csv_path)
    msg = str(info.value)
    assert str(csv_path) in msg and "line 4" in msg and "'image_name'" in msg and "ISIC_0000002" in msg


def test_missing_image_skip_warns(isic) -> None:
    images, csv_path, _ = isic
    (images / "ISIC_0000002.png").unlink()
    with pytest.warns(UserWarning, match=r"skipped 1 row.*ISIC_0000002"):
        source = DermoscopyImages(images, csv_path, missing="skip")
    assert "ISIC_0000002" not in source.ids and len(source) == 4


def test_filtered_out_rows_need_no_image(isic) -> None:
    images, csv_path, _ = isic
    (images / "ISIC_0000003.png").unlink()  # lower extremity: filtered out anyway
    assert len(DermoscopyImages(images, csv_path, include={"anatom_site": ["torso"]})) == 2


@pytest.mark.parametrize(
    ("header", "rows", "kwargs", "match"),
    [
        (["name", "site"], [["a", "x"]], {}, r"no image id column.*isic_id.*columns: \['name', 'site'\]"),
        (["isic_id"], [["a"]], {"id_column": "nope"}, r"id column\(s\) \['nope'\] not in the header"),
        (["isic_id"], [["a"]], {"include": {"site": "x"}}, r"include column\(s\) \['site'\]"),
        (["isic_id", "s"], [["a", "1"]], {"exclude": {"sex": "x"}}, r"exclude column\(s\) \['sex'\]"),
        (["isic_id", "s"], [["a", "1"], ["", "2"]], {}, r"line 3: empty 'isic_id'"),
        (["isic_id"], [["a"], ["b"], ["a"]], {}, r"line 4: 'isic_id' 'a' already on line 2"),
        (["isic_id"], [["a", "extra"]], {}, r"line 2: 2 fields but the header has 1"),
        (["isic_id", "isic_id"], [["a", "a"]], {}, r"duplicate column"),
        (["isic_id", "s"], [["a", "1"]], {"include": {"s": "2"}}, r"no images selected"),
    ],
)
def test_bad_csv_errors(tmp_path: Path, header, rows, kwargs, match) -> None:
    for name in ("a", "b"):
        write_image(tmp_path / "im" / f"{name}.png", 1)
    csv_path = write_csv(tmp_path / "meta.csv", header, rows)
    with pytest.raises(MetadataError, match=match) as info:
        DermoscopyImages(tmp_path / "im", csv_path, **kwargs)
    assert str(csv_path) in str(info.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "im").mkdir()
    with pytest.raises(FileNotFoundError, match="image_dir"):
        DermoscopyImages(tmp_path / "nothere")
    with pytest.raises(MetadataError, match=r"metadata CSV .*missing.csv does not exist"):
        DermoscopyImages(tmp_path / "im", tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(MetadataError, match="is empty"):
        DermoscopyImages(tmp_path / "im", tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes(b"isic_id\n\xe9\xff\n")
    with pytest.raises(MetadataError, match="not UTF-8"):
        DermoscopyImages(tmp_path / "im", tmp_path / "latin.csv")
    with pytest.raises(MetadataError, match="no images selected"):
        DermoscopyImages(tmp_path / "im")
    with pytest.raises(ValueError, match="need a metadata_csv"):
        DermoscopyImages(tmp_path / "im", include={"a": "b"})
    with pytest.raises(ValueError, match="missing="):
        DermoscopyImages(tmp_path / "im", missing="ignore")


def test_corrupt_image_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "im").mkdir()
    bad = tmp_path / "im" / "ISIC_9.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    source = DermoscopyImages(tmp_path / "im")
    with pytest.raises(SampleReadError, match="ISIC_9.jpg"):
        source[0]


def test_image_ref_reloads_the_same_image(isic) -> None:
    from da_toolkit.data.io import read_rgb

    images, csv_path, _ = isic
    sample = DermoscopyImages(images, csv_path)[1]
    np.testing.assert_array_equal(read_rgb(sample["meta"]["image_ref"]["path"]), sample["image"])
