"""Weighted sum of named loss terms, buildable from a YAML recipe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn


class LossOutput(NamedTuple):
    """Result of :class:`WeightedLosses`.

    Attributes:
        total: scalar ``sum_i weights[i] * terms[i]`` (with graph, for ``backward``).
        terms: each term's *unweighted* scalar value by name, detached, for logging.
    """

    total: Tensor
    terms: dict[str, Tensor]


class WeightedLosses(nn.Module):
    """Named loss terms that receive the same inputs; returns their weighted sum and each term.

    Every term is called as ``term(*args, **kwargs)`` with the arguments given to ``forward``
    and must return a scalar tensor. Terms without an entry in ``weights`` get weight 1.0. A
    weight of 0 still computes (and logs) the term. Names must be valid ``nn.ModuleDict`` keys
    (non-empty, no ``.``).

    Recipe (jsonargparse/LightningCLI) form, e.g. the DA V2 labeled loss ``ssi + 2 * gm``::

        loss:
          class_path: da_toolkit.losses.WeightedLosses
          init_args:
            terms:
              ssi: {class_path: da_toolkit.losses.AffineInvariantLoss}
              gm:  {class_path: da_toolkit.losses.GradientMatchingLoss, init_args: {scales: 4}}
            weights: {ssi: 1.0, gm: 2.0}

    Args:
        terms: name -> loss module.
        weights: name -> weight (a subset of the names of ``terms``).
    """

    def __init__(self, terms: dict[str, nn.Module], weights: dict[str, float] | None = None) -> None:
        super().__init__()
        if not terms:
            raise ValueError("WeightedLosses: terms must name at least one loss")
        for name, term in terms.items():
            if not name or "." in name:
                raise ValueError(f"WeightedLosses: term name {name!r} must be non-empty and contain no '.'")
            if not isinstance(term, nn.Module):
                raise ValueError(
                    f"WeightedLosses: term {name!r} must be an nn.Module loss, got {type(term).__name__}"
                )
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(terms))
        if unknown:
            raise ValueError(
                f"WeightedLosses: weights name unknown terms {unknown}; terms are {sorted(terms)}"
            )
        self.terms = nn.ModuleDict(dict(terms))
        self.weights: dict[str, float] = {name: float(weights.get(name, 1.0)) for name in terms}

    def forward(self, *args: Any, **kwargs: Any) -> LossOutput:
        """Weighted total and the unweighted terms (see :class:`LossOutput`)."""
        values: dict[str, Tensor] = {}
        total: Tensor | None = None
        for name, term in self.terms.items():
            value = term(*args, **kwargs)
            if not isinstance(value, Tensor) or value.dim() != 0:
                raise ValueError(f"WeightedLosses: term {name!r} must return a scalar tensor, got {value!r}")
            values[name] = value.detach()
            weighted = value * self.weights[name]
            total = weighted if total is None else total + weighted
        assert total is not None
        return LossOutput(total=total, terms=values)

    def extra_repr(self) -> str:
        """Settings shown in ``repr(module)``."""
        return "weights=" + ", ".join(f"{k}: {v:g}" for k, v in self.weights.items())


def weighted_sum(values: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """``sum_k weights.get(k, 1) * values[k]`` over the names of ``values`` (a scalar tensor)."""
    if not values:
        raise ValueError("weighted_sum: no values given")
    return torch.stack([v * float(weights.get(k, 1.0)) for k, v in values.items()]).sum()


#: Alias: the issue calls it a combined loss.
CombinedLoss = WeightedLosses
