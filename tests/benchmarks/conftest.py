"""The ``ratio`` fixture: benchmarks as ratios of two measurements interleaved in one run.

On a shared machine an absolute time says little; a ratio of two measurements taken side by
side (same process, same load, alternating) is a regression check. Use it like this::

    def test_harness_epoch_beats_the_reference(ratio):
        ratio.measure(
            "harness / run_glue_no_trainer epoch",  # the row's name in the table
            harness_epoch,            # numerator: a callable, run `rounds` times
            reference_epoch,          # denominator: a callable, run `rounds` times, interleaved (ABBA)
            rounds=5,                 # >= 5; each side also gets `warmup` untimed calls first (default 1)
            target=2.5, direction=">=",   # the ratio must be >= 2.5 ("<=": at most); target=None: no check
            work=2048, unit="examples/s", # optional: compare rates (work / seconds) instead of seconds;
                                          # (numerator work, denominator work) when a round of the faster
                                          # side repeats its unit to last about as long as the other's
            setup={"model": "tiny", "rows": 2048, "batch": 32},  # what was measured, for the table
            labels=("harness", "reference"),  # optional names of the two sides
        )

``ratio.figure(name, value, unit, limit=..., direction="<=", setup=...)`` records a single
measurement that is not a ratio (bytes written, peak resident memory) in a second table; a limit
not met fails the test the same way.

``measure`` returns the ``RatioRecord`` (``tests/benchmarks/ratios.py``): both medians and
their unit, every round, the ratio (median numerator / median denominator), target,
direction, ``met`` and the setup. Every record of the session lands in
``$HARNESS_BENCH_DIR/ratios.json`` and ``ratios.md`` (a Markdown table; default folder
``.bench`` in the repository, git-ignored) and in the terminal summary, *before* the check:
a target not met fails the test with the record's line. Several ``measure`` calls in one test
are allowed (each is a row).

pytest-benchmark: the ``ratio`` fixture uses the ``benchmark`` fixture, so ratio tests are
skipped by the default ``--benchmark-skip`` (unit-test runs) and run by ``tox -e bench``
(``--benchmark-only``). The first ``measure`` of a test times its numerator through
``benchmark.pedantic`` (its statistics and the ratio record, as ``extra_info``, go to
pytest-benchmark's table and ``--benchmark-json``); the denominator runs in pedantic's
untimed setup/teardown, alternating. Later ``measure`` calls of the test, a test that used
``benchmark`` itself, or ``--benchmark-disable`` time both sides directly.

Threads: the ``bench_threads`` fixture runs a benchmark with ``$HARNESS_BENCH_THREADS`` torch
threads (default 1) and restores the count afterwards; put it in the record's setup. One thread
because this machine's 2 cores are shared: with 2 threads per process and a load above 2, a
thread waits for its descheduled partner at every parallel region and an epoch's time varies
fourfold,; one-thread timings vary far less.

Opt-in variants: ``HARNESS_BENCH_MINILM=1`` enables the MiniLM benchmarks (minutes each);
``HARNESS_BENCH_INFO=1`` the informational ratios (no target); ``HARNESS_BENCH_MAIN=1`` the main
job's bytes and memory (``test_bench_run.py``); ``HARNESS_BENCH_TRANSFER=1`` the transfer figures
(``test_bench_transfer.py``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks.ratios import MIN_ROUNDS, Figure, RatioRecord, Side, interleave, machine, markdown, write_table

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR_ENV = "HARNESS_BENCH_DIR"
_RECORDS = pytest.StashKey[list[RatioRecord]]()
_FIGURES = pytest.StashKey[list[Figure]]()
_META = pytest.StashKey[dict[str, Any]]()


def bench_dir() -> Path:
    """Where the ratio table goes: ``$HARNESS_BENCH_DIR``, else ``<repository>/.bench``."""
    return Path(os.environ.get(BENCH_DIR_ENV) or ROOT / ".bench")


def info_enabled() -> bool:
    """Informational ratios without a target run only with ``HARNESS_BENCH_INFO=1``."""
    return os.environ.get("HARNESS_BENCH_INFO", "") not in ("", "0")


def minilm_enabled() -> bool:
    """The MiniLM variants run only with ``HARNESS_BENCH_MINILM=1`` (they take minutes each here)."""
    return os.environ.get("HARNESS_BENCH_MINILM", "") not in ("", "0")


class RatioRecorder:
    """What the ``ratio`` fixture hands a test; see the module docstring."""

    def __init__(
        self, benchmark: Any, records: list[RatioRecord], test: str, figures: list[Figure] | None = None
    ) -> None:
        self.benchmark, self.records, self.test = benchmark, records, test
        self.figures = figures if figures is not None else []

    def once(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once, timed by pytest-benchmark (a test that records only figures); its result."""
        if getattr(self.benchmark, "_mode", None) or getattr(self.benchmark, "disabled", True):
            return fn()
        return self.benchmark.pedantic(fn, rounds=1, iterations=1)

    def figure(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        limit: float | None = None,
        direction: str = "<=",
        setup: Mapping[str, Any] | None = None,
    ) -> Figure:
        """Record a single measurement (a row of the second table); fail when its limit is not met."""
        figure = Figure.of(name, value, unit, limit, direction, setup, self.test)
        self.figures.append(figure)
        self.benchmark.extra_info.setdefault("figures", {})[name] = {"value": figure.value, "unit": unit}
        print(f"\n{figure.describe()}")
        if figure.met is False:
            pytest.fail(f"limit not met: {figure.describe()}", pytrace=False)
        return figure

    def measure(
        self,
        name: str,
        numerator: Callable[[], object],
        denominator: Callable[[], object],
        *,
        rounds: int = MIN_ROUNDS,
        target: float | None,
        direction: str,
        work: float | tuple[float, float] | None = None,
        unit: str | None = None,
        setup: Mapping[str, Any] | None = None,
        labels: tuple[str, str] = ("numerator", "denominator"),
        warmup: int = 1,
    ) -> RatioRecord:
        """Run both callables ``rounds`` times interleaved, record the ratio, fail when the target is missed."""
        if rounds < MIN_ROUNDS:
            raise ValueError(f"{name}: rounds must be >= {MIN_ROUNDS} (a median of fewer is noise here)")
        unit = unit or ("s" if work is None else "per s")
        num_s, den_s = self._timings(numerator, denominator, rounds, warmup)
        record = RatioRecord.of(
            name,
            Side.of(labels[0], num_s, work[0] if isinstance(work, tuple) else work, unit),
            Side.of(labels[1], den_s, work[1] if isinstance(work, tuple) else work, unit),
            target,
            direction,
            setup,
            self.test,
        )
        self.records.append(record)
        extra = self.benchmark.extra_info.setdefault("ratios", {})
        extra[name] = {"ratio": record.ratio, "target": target, "direction": direction, "met": record.met}
        print(f"\n{record.describe()}")
        if record.met is False:
            pytest.fail(f"target not met: {record.describe()}", pytrace=False)
        return record

    def _timings(
        self, numerator: Callable[[], object], denominator: Callable[[], object], rounds: int, warmup: int
    ) -> tuple[list[float], list[float]]:
        bench = self.benchmark
        if getattr(bench, "_mode", None) or getattr(bench, "disabled", True):
            return interleave(numerator, denominator, rounds, warmup)
        for _ in range(warmup):
            denominator()
            numerator()
        num: list[float] = []
        den: list[float] = []
        calls = iter(range(2 * rounds))  # ABBA: even rounds run the denominator first (setup), odd ones after

        def timed_numerator() -> None:
            start = time.perf_counter()
            numerator()
            num.append(time.perf_counter() - start)

        def maybe_denominator(first: bool) -> Callable[..., None]:
            def run(*_: Any, **__: Any) -> None:
                k = next(calls) // 2
                if (k % 2 == 0) == first:
                    start = time.perf_counter()
                    denominator()
                    den.append(time.perf_counter() - start)

            return run

        bench.pedantic(timed_numerator, setup=maybe_denominator(True), teardown=maybe_denominator(False), rounds=rounds)
        return num, den


@pytest.fixture
def bench_threads() -> Iterator[int]:
    """Run the test with ``$HARNESS_BENCH_THREADS`` torch threads (default 1); yields the count."""
    import torch

    before = torch.get_num_threads()
    threads = int(os.environ.get("HARNESS_BENCH_THREADS") or 1)
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def ratio(benchmark: Any, request: pytest.FixtureRequest) -> RatioRecorder:
    """Record ratios of interleaved measurements (see the module docstring)."""
    stash = request.config.stash
    return RatioRecorder(benchmark, stash[_RECORDS], request.node.nodeid, stash[_FIGURES])


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDS] = []
    config.stash[_FIGURES] = []
    # the commit and date of the code the session loaded, not of a later checkout
    config.stash[_META] = {**machine(), "load_average_start": _load()}


def _load() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _meta(config: pytest.Config) -> dict[str, Any]:
    return {**config.stash[_META], "finished": time.strftime("%Y-%m-%d %H:%M:%S %z"), "load_average_end": _load()}


def pytest_sessionfinish(session: pytest.Session) -> None:
    records, figures = session.config.stash.get(_RECORDS, []), session.config.stash.get(_FIGURES, [])
    if records or figures:
        meta = _meta(session.config)
        session.config.stash[_META] = meta
        write_table(records, bench_dir(), meta, figures)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    records, figures = config.stash.get(_RECORDS, []), config.stash.get(_FIGURES, [])
    if records or figures:
        terminalreporter.write_sep("=", f"benchmark ratios (also in {bench_dir()}/ratios.md)")
        terminalreporter.write(markdown(records, config.stash[_META], figures))
