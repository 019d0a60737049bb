"""Interleaved timing for ratio benchmarks: the reference side is timed before every round that
pytest-benchmark times, so both sides see the same machine load; the ratio of their medians is
what a benchmark reports (and may assert). Local to these benchmarks until the shared recorder
fixture (tests/benchmarks/conftest.py) takes over."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


class Interleaved:
    """``pedantic(target, setup=Interleaved(reference), rounds=N)``: times ``reference`` once per round.

    ``times`` are seconds of wall clock (``time.perf_counter``); ``median`` their median.
    """

    def __init__(self, reference: Callable[[], Any]) -> None:
        self.reference = reference
        self.times: list[float] = []

    def __call__(self) -> None:
        start = time.perf_counter()
        self.reference()
        self.times.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.times)
