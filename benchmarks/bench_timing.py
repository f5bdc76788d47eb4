"""Timing helpers shared by the benchmarks: the machine's load, and CPU/wall seconds of calls.

CPU seconds (``time.process_time``: every thread of this process) are the figure the benchmarks
compare: they barely move with other jobs' load on a shared machine, unlike wall seconds (also
returned). Import from a benchmark script as ``from bench_timing import ...`` (the scripts put
their own folder on ``sys.path``).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["load_average", "time_cpu", "timed"]


def load_average() -> str:
    """The 1/5/15-minute load average as text, e.g. ``"0.46 0.79 1.01"`` (``n/a`` where unknown)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def timed(fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of ``fn``; ``sync`` (e.g. ``torch.cuda.synchronize``) runs
    before and after, inside the timed span."""
    sync()
    t, c = time.perf_counter(), time.process_time()
    fn()
    sync()
    return time.perf_counter() - t, time.process_time() - c


def time_cpu(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
    """(median CPU s, median wall s, last output) of ``reps`` calls of ``fn`` after one untimed warm-up call."""
    out = fn()
    cpu, wall = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(cpu), statistics.median(wall), out
