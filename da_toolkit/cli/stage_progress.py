"""Overall progress of a pipeline: "stage k of n", elapsed time and an estimate of what remains.

The estimate is measured, not guessed: each stage's work is counted in units of its kind (a fit
stage: ``max_steps`` x images per step, i.e. the labeled batch plus its unlabeled part; a
pseudo-label stage: images, from the sources' ``length`` when the config gives it, else the items
it wrote), and a kind's seconds per unit come from the stages of that kind that finished in this
run (for a fit stage, preferably those of the same task class). A stage whose work or rate is not
known yet is named instead of being counted ("+ pseudo_labels not measured yet"). The evaluation
that follows the stages is not included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StageClock", "format_duration", "stage_work"]


def format_duration(seconds: float) -> str:
    """``3725.2`` -> ``"1h02m05s"``, ``190`` -> ``"3m10s"``, ``42.4`` -> ``"42s"``."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def _init_args(node: Any) -> Mapping[str, Any]:
    if isinstance(node, Mapping):
        args = node.get("init_args", node)
        return args if isinstance(args, Mapping) else {}
    return {}


def stage_work(kind: str, config: Mapping[str, Any]) -> float | None:
    """Units of work of a stage from its config (module docstring), or None when unknown.

    Args:
        kind: ``"fit"`` or ``"pseudo_label"``.
        config: the stage's config as the pipeline runs it (``trainer``, ``model``, ``data``).
    """
    if kind == "fit":
        steps = (config.get("trainer") or {}).get("max_steps")
        data = _init_args(config.get("data"))
        batch = data.get("batch_size")
        if not isinstance(steps, int) or steps <= 0 or not isinstance(batch, int) or batch <= 0:
            return None
        labeled = bool(data.get("labeled"))
        unlabeled = bool(data.get("unlabeled") or data.get("pseudo_labeled"))
        ratio = data.get("unlabeled_ratio", 2)
        per_step = batch if labeled else 0
        if unlabeled:
            per_step += batch * int(ratio) if labeled else batch
        return float(steps * max(per_step, batch))
    if kind == "pseudo_label":
        sources = (config.get("data") or {}).get("sources") or []
        lengths = [_init_args(s).get("length") for s in sources]
        if sources and all(isinstance(n, int) and n >= 0 for n in lengths):
            return float(sum(lengths))  # type: ignore[arg-type]
        return None
    return None


@dataclass
class _Stage:
    name: str
    kind: str
    group: str
    work: float | None
    seconds: float | None = None
    measured: bool = False


@dataclass
class StageClock:
    """Progress of the stages of one pipeline run.

    Args:
        stages: ``(name, kind, group, work)`` per stage in run order; ``group`` is the task class
            of a fit stage (stages of one group share a rate first), ``work`` from
            :func:`stage_work`.
        start: the run's start time (``time.monotonic()``).
    """

    stages: list[tuple[str, str, str, float | None]]
    start: float
    _items: list[_Stage] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._items = [_Stage(n, k, g, w) for n, k, g, w in self.stages]

    def index(self, name: str) -> int:
        """1-based position of stage ``name``."""
        return next(i for i, s in enumerate(self._items) if s.name == name) + 1

    def finished(self, name: str, seconds: float, measured: bool, work: float | None = None) -> None:
        """Record that stage ``name`` ended after ``seconds``; ``measured``: it did all its work in
        this run (not skipped or resumed), so it gives a rate; ``work`` replaces the planned work."""
        item = self._items[self.index(name) - 1]
        item.seconds = seconds
        item.measured = measured and seconds > 0
        if work is not None:
            item.work = work

    def _rate(self, item: _Stage) -> float | None:
        done = [s for s in self._items if s.measured and s.work and s.kind == item.kind]
        same = [s for s in done if s.group == item.group]
        pool = same or done
        if not pool:
            return None
        return sum(s.seconds for s in pool) / sum(s.work for s in pool)  # type: ignore[misc]

    def remaining(self, after: int) -> tuple[float, list[str]]:
        """Estimated seconds of the stages after position ``after`` (1-based), and the names of
        those that could not be estimated yet."""
        total, unknown = 0.0, []
        for item in self._items[after:]:
            rate = self._rate(item)
            if rate is None or item.work is None:
                unknown.append(item.name)
            else:
                total += rate * item.work
        return total, unknown

    def line(self, name: str, now: float) -> str:
        """``stage k of n; elapsed E, remaining ~R`` for the moment stage ``name`` starts (when it
        has no ``seconds`` yet) or ends."""
        k, n = self.index(name), len(self._items)
        item = self._items[k - 1]
        after = k if item.seconds is not None else k - 1
        seconds, unknown = self.remaining(after)
        if after == n:
            rest = "remaining 0s (stages)"
        elif not unknown:
            rest = f"remaining ~{format_duration(seconds)}"
        elif len(unknown) == n - after:
            rest = "remaining unknown (no stage of that kind measured yet)"
        else:
            rest = f"remaining >{format_duration(seconds)} (+ {', '.join(unknown)} not measured yet)"
        return f"stage {k} of {n}; elapsed {format_duration(now - self.start)}, {rest}"
