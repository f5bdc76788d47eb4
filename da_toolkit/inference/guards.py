"""Checks that commands make before they spend compute on a model."""

from __future__ import annotations

from typing import Any

__all__ = ["RandomWeightsError", "UsageError", "require_trained_model"]


class UsageError(ValueError):
    """A mistake in what the user asked for; commands print it as one line and exit with 2."""


class RandomWeightsError(UsageError):
    """A command was given a model whose weights were never loaded."""


def require_trained_model(model: Any, allow_random_weights: bool = False, where: str = "model",
                          hint: str = "--allow_random_weights",
                          weights_hint: str = "--weights FILE / model.weights") -> None:
    """Refuse a randomly initialised model (its outputs look like plausible blurry depth).

    Args:
        model: a ``DepthModel`` (``weights_loaded`` False = no full-model weights were loaded);
            objects without the attribute are accepted.
        allow_random_weights: accept it anyway (tests, smoke runs, timing).
        where: what to name in the message (``"predict"``, ``"export"``, ``"model.teacher"``).
        hint: the option that allows it, named in the message.
        weights_hint: how to give the weights file, named in the message.

    Raises:
        RandomWeightsError: one line naming ``where``, the fix and ``hint``.
    """
    if allow_random_weights or getattr(model, "weights_loaded", True):
        return
    raise RandomWeightsError(
        f"{where}: the model has no weights loaded (a randomly initialised model predicts noise that "
        f"looks like blurry depth); give a weights file (e.g. {weights_hint}), or "
        f"{hint} to run it anyway"
    )
