"""Data sources (registered by the built-in plugin under the short names below)."""

from da_toolkit.data.sources.base import DataSource, make_sample
from da_toolkit.data.sources.pseudo import PseudoLabelSource

BUILTIN_DATASOURCES: dict[str, type] = {
    "pseudo_labels": PseudoLabelSource,
}

__all__ = ["BUILTIN_DATASOURCES", "DataSource", "PseudoLabelSource", "make_sample"]
