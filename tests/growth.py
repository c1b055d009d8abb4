"""Measuring how the cost of a piece of work grows with its size, on a noisy machine.

A test times the work at size n and at `factor` times n and checks the ratio.
CPU time of this process (not wall time) is measured, with the garbage
collector paused, so other processes on the machine and collection pauses do
not count; each size is timed more than once and the fastest run kept.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def cpu_seconds(run: Callable[[int], object], n: int) -> float:
    """CPU seconds `run(n)` takes."""
    gc.collect()
    gc.disable()
    try:
        started = time.process_time()
        run(n)
        return time.process_time() - started
    finally:
        gc.enable()


def growth(run: Callable[[int], object], n: int, factor: int, *, limit: float) -> float:
    """How many times longer `run(factor * n)` takes than `run(n)`.

    The large size is timed again only when the first ratio is over `limit`, so
    a quadratic `run` is not timed at its slowest more than twice.
    """
    run(n)  # warm up: imports, caches, first-call costs
    small = min(cpu_seconds(run, n) for _ in range(3))
    large = cpu_seconds(run, factor * n)
    if large / small > limit:
        large = min(large, cpu_seconds(run, factor * n))
    return large / max(small, 1e-9)
