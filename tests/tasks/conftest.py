"""Tiny batches and task builders shared by the task tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch


def tiny_model(**decoder: Any) -> Any:
    """The tiny preset as a DepthModel (decoder arguments overridden, e.g. ``max_depth=20.0``)."""
    from da_toolkit.models.description import build_model

    return build_model({"preset": "tiny", "decoder": decoder} if decoder else "tiny")


def make_labeled(b: int = 2, h: int = 28, w: int = 42, kind: str = "metric", seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, 3, 3, 4, generator=g)
    image = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    # learnable: disparity follows the image brightness
    depth = 1.0 / (0.2 + image.mean(dim=1))
    return {
        "image": image,
        "depth": depth,
        "valid": torch.ones(b, h, w, dtype=torch.bool),
        "depth_kind": [kind] * b,
        "meta": [{"source": "t", "id": str(i)} for i in range(b)],
    }


def make_unlabeled(b: int = 4, h: int = 28, w: int = 42, seed: int = 1, depth: bool = False) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {"image": torch.rand(b, 3, h, w, generator=g),
                           "meta": [{"source": "u", "id": str(i)} for i in range(b)]}
    if depth:
        out["depth"] = torch.rand(b, h, w, generator=g)
        out["valid"] = torch.ones(b, h, w, dtype=torch.bool)
    return out


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


class ListData:
    """A minimal LightningDataModule serving fixed batches (train) and labeled batches (val)."""

    def __new__(cls, train: list[dict[str, Any]], val: list[dict[str, Any]] | None = None):  # noqa: D102
        import lightning.pytorch as pl
        from torch.utils.data import DataLoader

        def loader(batches: list[dict[str, Any]]) -> DataLoader:
            return DataLoader(batches, batch_size=1, shuffle=False, collate_fn=lambda items: items[0])

        class _DM(pl.LightningDataModule):
            def train_dataloader(self):  # noqa: D401
                return loader(train)

            def val_dataloader(self):
                return loader(val or [])

        return _DM()


def tiny_trainer(tmp_path, steps: int, **kw: Any):
    import lightning.pytorch as pl

    defaults = dict(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                    default_root_dir=str(tmp_path), limit_val_batches=0)
    defaults.update(kw)
    return pl.Trainer(**defaults)
