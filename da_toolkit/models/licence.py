"""Licences of model weights: what a model carries, when to say it, what outputs record.

A :class:`~da_toolkit.models.depth_model.DepthModel` carries ``licence`` (an SPDX identifier of
the licence of the weights it was built for, e.g. ``"CC-BY-NC-4.0"``) and ``origin`` (where the
weights come from, e.g. the preset ``"depth-anything-v2-vitb"``). Presets fill both in; they are
constructor arguments, so the model description records them and they travel through every
stage: recipe -> ``.ckpt`` (``da_toolkit_model``) / our safetensors -> ``load_model`` ->
predictions (PNG text chunk, PLY header), ONNX ``metadata_props`` and pseudo-label stores.

When weights are loaded into a model whose licence is not permissive (non-commercial, or not
stated upstream), one line is logged (logger ``da_toolkit.licence``, level WARNING), once per
process for each licence and origin. Permissive licences and models of unknown licence (a
user's own architecture) say nothing; their outputs record ``licence: unknown``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "LICENCE_LOGGER",
    "NOASSERTION",
    "PERMISSIVE",
    "UNKNOWN",
    "is_restricted",
    "licence_line",
    "licence_notice",
    "notify_licence",
    "provenance",
    "reset_notices",
]

#: SPDX value for "the licensor states no licence" (used where upstream is silent)
NOASSERTION = "NOASSERTION"
#: what outputs record for a model that carries no licence
UNKNOWN = "unknown"
#: licences that allow commercial use without a notice (SPDX identifiers)
PERMISSIVE = frozenset({"Apache-2.0", "MIT", "BSD-2-Clause", "BSD-3-Clause", "CC-BY-4.0", "CC0-1.0"})
LICENCE_LOGGER = "da_toolkit.licence"

_log = logging.getLogger(LICENCE_LOGGER)
_notified: set[tuple[str, str | None]] = set()


def is_restricted(licence: str | None) -> bool:
    """Whether loading weights of this licence deserves a notice (not permissive, not unknown)."""
    return licence is not None and licence not in PERMISSIVE


def _meaning(licence: str) -> str:
    if "-NC" in licence.upper():
        return "non-commercial use only"
    if licence == NOASSERTION:
        return "no licence is stated upstream for these weights; check before any commercial use"
    return "check its terms before you ship outputs or models trained from it"


def licence_notice(licence: str | None, origin: str | None = None) -> str | None:
    """The one-line notice for a restricted licence (``None`` for permissive or unknown ones)."""
    if not is_restricted(licence):
        return None
    assert licence is not None
    what = f"{origin} weights" if origin else "these model weights"
    return (f"da-toolkit: {what}: licence {licence} ({_meaning(licence)}); recorded in every "
            f"prediction's metadata")


def notify_licence(licence: str | None, origin: str | None = None) -> str | None:
    """Log :func:`licence_notice` once per process for each ``(licence, origin)``; returns it."""
    text = licence_notice(licence, origin)
    if text is not None and (licence, origin) not in _notified:
        _notified.add((str(licence), origin))
        _log.warning(text)
    return text


def reset_notices() -> None:
    """Forget which notices were logged (tests)."""
    _notified.clear()


def provenance(model: Any) -> dict[str, str]:
    """``{"licence": ..., "origin": ...}`` of a model for output metadata.

    ``licence`` is :data:`UNKNOWN` for a model that carries none; ``origin`` is present only when
    known. Works for any object (a plain ``nn.Module`` gives ``{"licence": "unknown"}``).
    """
    licence = getattr(model, "licence", None)
    origin = getattr(model, "origin", None)
    out = {"licence": str(licence) if licence else UNKNOWN}
    if origin:
        out["origin"] = str(origin)
    return out


def licence_line(info: dict[str, str]) -> str:
    """A plain-text line for headers and text chunks: ``model weights licence CC-BY-NC-4.0
    (depth-anything-v2-vitb)`` / ``model weights licence unknown``."""
    origin = info.get("origin")
    return f"model weights licence {info.get('licence', UNKNOWN)}" + (f" ({origin})" if origin else "")
