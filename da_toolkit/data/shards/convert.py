"""Pack any registered data source into WebDataset tar shards (``da-toolkit shards``).

Shard ``n`` holds source items ``[n * maxcount, (n + 1) * maxcount)`` (minus bad ones, which are
reported and skipped), so a re-run after a crash skips the shards the index lists as finished
and rewrites the one that was in progress (shards are finalised atomically, see
:mod:`da_toolkit.data.shards.writer`). The output folder gets ``<prefix>-NNNNNN.tar`` and
``<prefix>.index.json``; read it back with ``ShardedImages``/``ShardedRGBD(index=...)``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm import tqdm

from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.shards.codec import encode_sample
from da_toolkit.data.shards.writer import ShardWriter, index_url, load_index

log = logging.getLogger("da_toolkit.data")


def build_source(spec: str | Mapping[str, Any], init_args: Mapping[str, Any] | None = None) -> Any:
    """A data source from a registered short name (``synthetic``, ``image_folder``...) or a
    ``{"class_path", "init_args"}`` mapping; ``init_args`` are merged in."""
    from da_toolkit.data.sources.base import instantiate

    if isinstance(spec, str):
        if "." in spec:
            config = {"class_path": spec, "init_args": dict(init_args or {})}
            return instantiate(config)
        from da_toolkit.plugins import get_component

        try:
            cls = get_component("datasources", spec)
        except LookupError as exc:
            raise ValueError(str(exc).strip("'\"")) from None
        return cls(**dict(init_args or {}))
    config = dict(spec)
    config["init_args"] = {**dict(config.get("init_args") or {}), **dict(init_args or {})}
    return instantiate(config)


def pack_source(
    source: Any,
    root: str,
    *,
    prefix: str = "data",
    maxcount: int = 1000,
    image_format: str = "jpg",
    quality: int = 95,
    labels: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``source`` (map-style, ``len`` + ``[i]``) into shards under ``root``.

    Args:
        source: the data source.
        root: output folder or URL.
        prefix: shard name prefix.
        maxcount: items per shard.
        image_format: ``jpg`` (quality ``quality``), ``png`` or ``webp``.
        quality: JPEG/WebP quality (1-100).
        labels: keep depth/valid/seg (False: images only).
        storage_options: fsspec options of ``root``.
        progress: show a tqdm bar.

    Returns:
        ``{"shards", "samples", "skipped", "reused"}`` (``reused`` = shards already finished).
    """
    n = len(source)
    n_shards = -(-n // maxcount)
    header = {"source_len": n, "maxcount": maxcount, "image_format": image_format, "labels": labels}
    old = load_index(index_url(str(root), prefix), storage_options)
    if old is not None:
        for key, value in header.items():
            if old.get(key) != value:
                raise ValueError(
                    f"{index_url(str(root), prefix)}: an earlier run used {key}={old.get(key)!r}, this one "
                    f"{key}={value!r}; use another output folder/prefix or the same settings"
                )
    writer = ShardWriter(str(root), prefix, maxcount=maxcount, header=header, storage_options=storage_options)
    reused = len(writer.finished)
    skipped = 0
    bar = tqdm(total=n, initial=min(n, reused * maxcount), unit="sample", disable=not progress, desc=f"packing {prefix}")
    try:
        for shard in range(reused, n_shards):
            for i in range(shard * maxcount, min(n, (shard + 1) * maxcount)):
                try:
                    sample = source[i]
                    if not labels:
                        sample = {k: v for k, v in sample.items() if k in ("image", "meta", "intrinsics")}
                    members = encode_sample(sample, image_format, quality)
                except SampleReadError as exc:
                    skipped += 1
                    log.warning("shards: skipping bad item %d: %s (%d skipped)", i, exc, skipped)
                    bar.update(1)
                    continue
                writer.write(str(sample["meta"]["id"]), members)
                bar.update(1)
            # close the shard at its item-range boundary (empty if every item was bad)
            if len(writer.finished) < shard + 1:
                writer.flush(empty=True)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    total = sum(int(e["nsamples"]) for e in writer.finished)
    return {"shards": len(writer.finished), "samples": total, "skipped": skipped, "reused": reused}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``da-toolkit shards``."""
    p = argparse.ArgumentParser(prog="da-toolkit shards", description="Pack a data source into WebDataset tar shards (resumable).")
    p.add_argument("--source", required=True, help="registered source name (synthetic, image_folder, nyuv2...) or a class path")
    p.add_argument("--init_args", default="{}", help="JSON object of the source's arguments, e.g. '{\"root\": \"data/imgs\"}'")
    p.add_argument("--out", required=True, help="output folder or URL (s3://bucket/prefix)")
    p.add_argument("--prefix", default="data", help="shard name prefix (default: data)")
    p.add_argument("--maxcount", type=int, default=1000, help="samples per shard (default: 1000)")
    p.add_argument("--image_format", default="jpg", choices=["jpg", "png", "webp"])
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default: 95)")
    p.add_argument("--no_labels", action="store_true", help="images only (drop depth, valid, seg)")
    p.add_argument("--storage_options", default="{}", help="JSON fsspec options of --out")
    p.add_argument("--no_progress", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``da-toolkit shards ...``; returns the exit code (2 on bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        init_args = json.loads(args.init_args)
        storage = json.loads(args.storage_options)
    except ValueError as exc:
        parser.error(f"--init_args/--storage_options must be JSON objects ({exc})")
    if not isinstance(init_args, dict) or not isinstance(storage, dict):
        parser.error("--init_args/--storage_options must be JSON objects")
    try:
        source = build_source(args.source, init_args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"da-toolkit shards: cannot build source {args.source!r}: {exc}")
        return 2
    result = pack_source(
        source, args.out, prefix=args.prefix, maxcount=args.maxcount, image_format=args.image_format,
        quality=args.quality, labels=not args.no_labels, storage_options=storage, progress=not args.no_progress,
    )
    print(json.dumps(result))
    return 0
