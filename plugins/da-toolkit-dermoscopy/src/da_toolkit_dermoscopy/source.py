"""Unlabeled dermoscopy image collections laid out the ISIC way: a folder of images + a metadata CSV."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from da_toolkit.data.io import read_rgb
from da_toolkit.data.sources.base import DataSource, make_sample

#: id columns recognised when ``id_column`` is not given, in this order (ISIC archive export,
#: ISIC 2020 challenge, HAM10000, ISIC 2019 challenge).
ID_COLUMNS: tuple[str, ...] = ("isic_id", "image_name", "image_id", "image")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class MetadataError(ValueError):
    """The metadata CSV (or the image folder it points into) is not usable; names file/row/column."""


@dataclass(frozen=True)
class _Item:
    item_id: str
    path: Path
    row: dict[str, str]


def _index_images(image_dir: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Map every image in ``image_dir`` (recursively) by file name and by stem (both lower case)."""
    exts = {e.lower() for e in extensions}
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(image_dir):
        dirnames.sort()
        for fname in sorted(filenames):
            if os.path.splitext(fname)[1].lower() in exts:
                path = Path(dirpath) / fname
                found.setdefault(fname.lower(), path)
                found.setdefault(os.path.splitext(fname)[0].lower(), path)
    return found


def _read_csv(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(line number, row)`` pairs; raises :class:`MetadataError` naming the file/row."""
    if not csv_path.is_file():
        raise MetadataError(f"metadata CSV {csv_path} does not exist")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise MetadataError(f"metadata CSV {csv_path} is empty: expected a header row")
            header = [h.strip() for h in header]
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise MetadataError(f"metadata CSV {csv_path}: duplicate column(s) {dupes} in the header")
            rows: list[tuple[int, dict[str, str]]] = []
            for values in reader:
                line = reader.line_num
                if not any(v.strip() for v in values):
                    continue  # blank line
                if len(values) > len(header):
                    raise MetadataError(
                        f"metadata CSV {csv_path}, line {line}: {len(values)} fields but the header has "
                        f"{len(header)} columns"
                    )
                values = [v.strip() for v in values] + [""] * (len(header) - len(values))
                rows.append((line, dict(zip(header, values))))
    except UnicodeDecodeError as exc:
        raise MetadataError(f"metadata CSV {csv_path}: not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise MetadataError(f"metadata CSV {csv_path}: malformed CSV ({exc})") from None
    return header, rows


def _check_columns(csv_path: Path, header: list[str], columns: Mapping[str, Any], what: str) -> None:
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise MetadataError(
            f"metadata CSV {csv_path}: {what} column(s) {unknown} not in the header (columns: {header})"
        )


def _as_values(column: str, values: str | Sequence[str]) -> set[str]:
    if isinstance(values, str):
        return {values.strip()}
    if not isinstance(values, Sequence):
        raise TypeError(f"filter on column {column!r}: expected a string or a list of strings, got {values!r}")
    return {str(v).strip() for v in values}


class DermoscopyImages(DataSource):
    """Unlabeled dermoscopy images from an ISIC-style collection.

    Layout: ``image_dir`` holds the images (any depth of sub-folders); ``metadata_csv`` (optional)
    has one row per image, identified by ``id_column`` (default: the first of ``isic_id``,
    ``image_name``, ``image_id``, ``image`` present in the header). An id is matched to an image
    file by its file name or its stem, case-insensitively (``ISIC_0000000`` ->
    ``ISIC_0000000.jpg``). Without a CSV every image in ``image_dir`` is used, ordered by path.

    Samples (no depth: the collection is unlabeled): ``image`` uint8 ``(H, W, 3)`` RGB,
    ``meta = {"source": name, "id": <isic id or relative path>, "image_ref": {"path": <file>},
    "metadata": <the CSV row as strings>}``.

    Args:
        image_dir: folder of images.
        metadata_csv: metadata CSV (UTF-8, with header); needed for ``include``/``exclude``.
        id_column: column holding the image id (default: auto-detect, see above).
        include: keep only rows whose column value is one of the given values, e.g.
            ``{"anatom_site_general": ["head/neck", "upper extremity"]}`` (all columns must match).
        exclude: drop rows whose column value is one of the given values.
        missing: what to do with a CSV row whose image file is not found: ``"error"`` (default)
            or ``"skip"`` (with one warning giving the count and the first ids).
        extensions: image file extensions to consider.
        name: source name written to ``meta["source"]``.

    Raises:
        FileNotFoundError: ``image_dir`` is missing.
        MetadataError: unreadable CSV, unknown id/filter column, empty or duplicate id, missing
            image (``missing="error"``), or nothing left after filtering; the message names the CSV
            file, the line and the column.
    """

    name = "dermoscopy"

    def __init__(
        self,
        image_dir: str | Path,
        metadata_csv: str | Path | None = None,
        id_column: str | None = None,
        include: dict[str, str | list[str]] | None = None,
        exclude: dict[str, str | list[str]] | None = None,
        missing: Literal["error", "skip"] = "error",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        name: str = "dermoscopy",
    ) -> None:
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"DermoscopyImages.image_dir {self.image_dir} is not a folder")
        if missing not in ("error", "skip"):
            raise ValueError(f"DermoscopyImages.missing={missing!r}: expected 'error' or 'skip'")
        self.name = name
        include = dict(include or {})
        exclude = dict(exclude or {})
        images = _index_images(self.image_dir, extensions)
        if metadata_csv is None:
            if include or exclude or id_column:
                raise ValueError("DermoscopyImages: include/exclude/id_column need a metadata_csv")
            paths = sorted(set(images.values()))
            self._items = [_Item(p.relative_to(self.image_dir).as_posix(), p, {}) for p in paths]
        else:
            self._items = self._items_from_csv(Path(metadata_csv), images, id_column, include, exclude, missing)
        if not self._items:
            where = metadata_csv if metadata_csv is not None else self.image_dir
            filters = f" (include={include}, exclude={exclude})" if include or exclude else ""
            raise MetadataError(f"{where}: no images selected{filters}")

    def _items_from_csv(
        self,
        csv_path: Path,
        images: dict[str, Path],
        id_column: str | None,
        include: dict[str, str | list[str]],
        exclude: dict[str, str | list[str]],
        missing: str,
    ) -> list[_Item]:
        header, rows = _read_csv(csv_path)
        if id_column is None:
            id_column = next((c for c in ID_COLUMNS if c in header), None)
            if id_column is None:
                raise MetadataError(
                    f"metadata CSV {csv_path}: no image id column; expected one of {list(ID_COLUMNS)} "
                    f"or id_column=... (columns: {header})"
                )
        _check_columns(csv_path, header, {id_column: None}, "id")
        _check_columns(csv_path, header, include, "include")
        _check_columns(csv_path, header, exclude, "exclude")
        keep = {c: _as_values(c, v) for c, v in include.items()}
        drop = {c: _as_values(c, v) for c, v in exclude.items()}
        seen: dict[str, int] = {}
        items: list[_Item] = []
        not_found: list[str] = []
        for line, row in rows:
            item_id = row[id_column]
            if not item_id:
                raise MetadataError(f"metadata CSV {csv_path}, line {line}: empty {id_column!r}")
            if item_id in seen:
                raise MetadataError(
                    f"metadata CSV {csv_path}, line {line}: {id_column!r} {item_id!r} already on line {seen[item_id]}"
                )
            seen[item_id] = line
            if any(row[c] not in v for c, v in keep.items()) or any(row[c] in v for c, v in drop.items()):
                continue
            path = images.get(item_id.lower())
            if path is None:
                if missing == "error":
                    raise MetadataError(
                        f"metadata CSV {csv_path}, line {line}, column {id_column!r}: no image file for "
                        f"{item_id!r} in {self.image_dir} (looked for the name or <name>.<ext>; "
                        "missing='skip' skips such rows)"
                    )
                not_found.append(item_id)
                continue
            items.append(_Item(item_id, path, row))
        if not_found:
            warnings.warn(
                f"{csv_path}: skipped {len(not_found)} row(s) without an image in {self.image_dir}, "
                f"e.g. {not_found[:3]}",
                stacklevel=3,
            )
        return items

    @property
    def ids(self) -> list[str]:
        """Item ids, in dataset order."""
        return [item.item_id for item in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self._items[self._check_index(index)]
        sample = make_sample(
            read_rgb(item.path),
            source=self.name,
            item_id=item.item_id,
            image_ref={"path": str(item.path.resolve())},
        )
        sample["meta"]["metadata"] = dict(item.row)
        return sample
