"""Named model presets and :func:`load_model` (the user-facing module).

The presets are data in the model-description schema
(:mod:`da_toolkit.models.preset_table`); :func:`load_model` builds them, or any self-describing
weights file (:mod:`da_toolkit.models.loading`). Nothing is ever downloaded.
"""

from __future__ import annotations

from da_toolkit.models.loading import load_model
from da_toolkit.models.preset_table import (
    APACHE,
    CC_BY_NC,
    DPT_WIDTHS,
    PRESETS,
    Preset,
    get_preset,
)

__all__ = ["APACHE", "CC_BY_NC", "DPT_WIDTHS", "PRESETS", "Preset", "get_preset", "load_model"]
