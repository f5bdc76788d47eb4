"""Data sources, transforms and the data module.

- :mod:`da_toolkit.data.sources` - registered data sources (synthetic, folders, benchmarks, pseudo labels)
- :mod:`da_toolkit.data.io` - image/depth decoding (``read_rgb``) and atomic writers
- :mod:`da_toolkit.data.pseudo_store` - the pseudo-label store writer
- :mod:`da_toolkit.data.datamodule` - :class:`DepthDataModule`

Targets for the relative losses (metric depth -> normalised disparity) are made by
:func:`da_toolkit.losses.depth_to_normalized_disparity`.

``DepthDataModule`` is imported lazily so that ``da_toolkit.data.io`` stays light (no Lightning).
"""

from __future__ import annotations

from typing import Any

from da_toolkit.data.errors import SampleReadError

__all__ = ["DepthDataModule", "SampleReadError"]


def __getattr__(name: str) -> Any:
    if name == "DepthDataModule":
        from da_toolkit.data.datamodule import DepthDataModule

        return DepthDataModule
    raise AttributeError(f"module 'da_toolkit.data' has no attribute {name!r}")
