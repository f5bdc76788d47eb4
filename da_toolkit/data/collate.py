"""Collate tensor samples into the batch dicts of ``docs/architecture.md``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def collate_samples(items: list[dict[str, Any]], *, require_depth: bool = False, pad: bool = False) -> dict[str, Any]:
    """Stack transformed samples.

    Returns ``image (B,3,H,W)``, ``meta`` (list of dicts, each with ``size`` = its ``(H, W)``
    before padding), and when every item has them ``depth (B,H,W)``, ``valid (B,H,W)`` bool,
    ``depth_kind`` (list), ``seg (B,H,W)``, ``intrinsics (B,3,3)``.

    Args:
        items: transformed samples (dicts of tensors and ``meta``).
        require_depth: error if an item has no depth (labeled streams).
        pad: pad items of different sizes at the bottom/right (zeros, ``valid`` False, ``seg``
            255); without it different sizes are an error.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    sizes = [tuple(it["image"].shape[-2:]) for it in items]
    if require_depth:
        for it in items:
            if "depth" not in it:
                m = it["meta"]
                raise ValueError(
                    f"labeled stream: sample {m.get('id')!r} of source {m.get('source')!r} has no depth; "
                    "put unlabeled sources in `unlabeled`"
                )
    height, width = max(s[0] for s in sizes), max(s[1] for s in sizes)
    if len(set(sizes)) > 1 and not pad:
        raise ValueError(
            f"samples of different sizes {sorted(set(sizes))} in one batch: use batch size 1 for "
            "evaluation (default) or pad_eval_batches=True"
        )

    def _pad(x: torch.Tensor, value: float) -> torch.Tensor:
        dh, dw = height - x.shape[-2], width - x.shape[-1]
        return F.pad(x, (0, dw, 0, dh), value=value) if dh or dw else x

    batch: dict[str, Any] = {
        "image": torch.stack([_pad(it["image"], 0.0) for it in items]),
        "meta": [{**it["meta"], "size": size} for it, size in zip(items, sizes, strict=True)],
    }
    if all("depth" in it for it in items):
        batch["depth"] = torch.stack([_pad(it["depth"], 0.0) for it in items])
        batch["valid"] = torch.stack([_pad(it["valid"], False) for it in items])
        batch["depth_kind"] = [it["depth_kind"] for it in items]
    if all("seg" in it for it in items):
        batch["seg"] = torch.stack([_pad(it["seg"], 255) for it in items])
    if all("intrinsics" in it for it in items):
        batch["intrinsics"] = torch.stack([it["intrinsics"] for it in items])
    return batch
