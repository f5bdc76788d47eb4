"""Tests of batch collation."""

from __future__ import annotations

import pytest
import torch

from da_toolkit.data.collate import collate_samples


def _item(h, w, depth=True, seg=True, i=0):
    it = {"image": torch.rand(3, h, w), "meta": {"source": "s", "id": str(i)}}
    if depth:
        it.update(depth=torch.rand(h, w) + 1, valid=torch.ones(h, w, dtype=torch.bool), depth_kind="metric")
    if seg:
        it["seg"] = torch.zeros(h, w, dtype=torch.long)
    return it


def test_collate_stacks_and_keeps_meta():
    b = collate_samples([_item(4, 5, i=0), _item(4, 5, i=1)], require_depth=True)
    assert b["image"].shape == (2, 3, 4, 5) and b["depth"].shape == (2, 4, 5) and b["valid"].dtype == torch.bool
    assert b["depth_kind"] == ["metric", "metric"] and [m["id"] for m in b["meta"]] == ["0", "1"]
    assert b["meta"][0]["size"] == (4, 5)


def test_collate_drops_optional_keys_not_in_all_items():
    b = collate_samples([_item(4, 5), _item(4, 5, seg=False, depth=False)])
    assert "seg" not in b and "depth" not in b


def test_collate_requires_depth_for_labeled():
    with pytest.raises(ValueError, match="has no depth"):
        collate_samples([_item(4, 5, depth=False)], require_depth=True)


def test_collate_sizes_pad_or_error():
    items = [_item(4, 5), _item(3, 6)]
    with pytest.raises(ValueError, match="different sizes"):
        collate_samples(items)
    b = collate_samples(items, pad=True)
    assert b["image"].shape == (2, 3, 4, 6)
    assert not b["valid"][0, :, 5].any() and not b["valid"][1, 3].any() and b["valid"][1, :3, :6].all()
    assert (b["seg"][1, 3] == 255).all()
    assert [m["size"] for m in b["meta"]] == [(4, 5), (3, 6)]
