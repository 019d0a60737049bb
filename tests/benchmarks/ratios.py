"""Ratios of two measurements taken interleaved in one process: the benchmarks' regression checks.

A speed claim on a shared, noisy machine is only meaningful as a *ratio* of two measurements
taken side by side: both see the same load. ``interleave`` runs two callables alternately
(ABBA order: round k runs the denominator first when k is even, the numerator first when k is
odd, so a steady drift in load does not favour either side), ``RatioRecord.of`` turns the
per-round seconds into medians (or median rates, with ``work``), their ratio and whether the
target is met, and ``write_table`` writes every record of a session as ``ratios.json`` and a
Markdown table ``ratios.md``. The pytest side (the ``ratio`` fixture) is in ``conftest.py``.

Units: seconds per call, or ``work / seconds`` (e.g. examples/s) when ``work`` is given; the
ratio is ``median(numerator) / median(denominator)`` in those units.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DIRECTIONS = (">=", "<=")
MIN_ROUNDS = 5


def interleave(
    numerator: Callable[[], object], denominator: Callable[[], object], rounds: int, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Seconds per call of each function, ``rounds`` calls each, alternating in ABBA order.

    ``warmup`` untimed calls of each come first (first-call costs: allocations, lazy imports,
    caches). Returns (numerator seconds, denominator seconds), one value per round, in order.
    """
    for _ in range(warmup):
        denominator()
        numerator()
    num: list[float] = []
    den: list[float] = []
    for k in range(rounds):
        order = ((denominator, den), (numerator, num)) if k % 2 == 0 else ((numerator, num), (denominator, den))
        for fn, out in order:
            out.append(timed(fn))
    return num, den


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call (``time.perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Side:
    """One of the two measured functions: its per-round values and their median, in ``unit``."""

    label: str
    unit: str  # "s" (seconds per call) or a rate such as "examples/s"
    median: float
    values: tuple[float, ...]  # one per round, in the order taken
    seconds: tuple[float, ...]  # wall seconds of each round

    @classmethod
    def of(cls, label: str, seconds: Sequence[float], work: float | None, unit: str) -> Side:
        values = tuple(work / s if work is not None else s for s in seconds)
        return cls(label, unit, statistics.median(values), values, tuple(seconds))


@dataclass(frozen=True)
class RatioRecord:
    """A named ratio of two interleaved measurements, its target and whether it is met."""

    name: str
    numerator: Side
    denominator: Side
    ratio: float  # numerator.median / denominator.median
    target: float | None  # None: recorded for information, never fails
    direction: str  # ">=": the ratio must be at least the target; "<=": at most
    met: bool | None  # None without a target
    rounds: int
    setup: dict[str, Any] = field(default_factory=dict)  # model, rows, batch, ...: what was measured
    test: str = ""  # the pytest node id that measured it

    @classmethod
    def of(
        cls,
        name: str,
        numerator: Side,
        denominator: Side,
        target: float | None,
        direction: str,
        setup: Mapping[str, Any] | None = None,
        test: str = "",
    ) -> RatioRecord:
        """Raises ``ValueError`` for an unknown direction, sides in different units or a non-positive median."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if numerator.unit != denominator.unit:
            raise ValueError(f"{name}: numerator in {numerator.unit}, denominator in {denominator.unit}")
        if not (numerator.median > 0 and denominator.median > 0):
            raise ValueError(f"{name}: medians must be positive ({numerator.median}, {denominator.median})")
        ratio = numerator.median / denominator.median
        met = None if target is None else (ratio >= target if direction == ">=" else ratio <= target)
        rounds = len(numerator.values)
        return cls(name, numerator, denominator, ratio, target, direction, met, rounds, dict(setup or {}), test)

    def verdict(self) -> str:
        if self.met is None:
            return "(no target)"
        return "met" if self.met else "NOT MET"

    def describe(self) -> str:
        """One line: the ratio, both medians, the target and the verdict."""
        target = "" if self.target is None else f" (target {self.direction} {self.target:g}: {self.verdict()})"
        return (
            f"{self.name}: {self.ratio:.3f}{target}; {self.numerator.label} {self.numerator.median:.4g} "
            f"{self.numerator.unit} / {self.denominator.label} {self.denominator.median:.4g} {self.denominator.unit}, "
            f"median of {self.rounds} interleaved rounds"
        )


@dataclass(frozen=True)
class Figure:
    """A single measurement that is not a ratio (bytes written, peak memory), with an optional limit."""

    name: str
    value: float
    unit: str  # "MB", "MiB", ...
    limit: float | None  # None: recorded for information
    direction: str  # "<=": the value must be at most the limit; ">=": at least
    met: bool | None  # None without a limit
    setup: dict[str, Any] = field(default_factory=dict)
    test: str = ""

    @classmethod
    def of(
        cls,
        name: str,
        value: float,
        unit: str,
        limit: float | None = None,
        direction: str = "<=",
        setup: Mapping[str, Any] | None = None,
        test: str = "",
    ) -> Figure:
        """Raises ``ValueError`` for an unknown direction or a value that is not a finite number."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if not math.isfinite(value):
            raise ValueError(f"{name}: value must be finite, got {value}")
        met = None if limit is None else (value <= limit if direction == "<=" else value >= limit)
        return cls(name, float(value), unit, limit, direction, met, dict(setup or {}), test)

    def verdict(self) -> str:
        return "(no limit)" if self.met is None else ("met" if self.met else "NOT MET")

    def describe(self) -> str:
        limit = "" if self.limit is None else f" (limit {self.direction} {self.limit:g}: {self.verdict()})"
        return f"{self.name}: {_number(self.value)} {self.unit}{limit}"


def machine() -> dict[str, Any]:
    """Where and when the session started: date, commit (and whether tracked files differ from it), CPUs,
    torch's default thread count and the load average."""
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_default_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - the benchmarks need torch anyway
        pass
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _number(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.1f}"


def markdown(records: Sequence[RatioRecord], meta: Mapping[str, Any], figures: Sequence[Figure] = ()) -> str:
    """The records as a Markdown table (the figures as a second one), headed by where and when measured."""
    load = meta.get("load_average_start"), meta.get("load_average_end")
    dirty = " (with uncommitted changes)" if meta.get("dirty") else ""
    lines = [
        "# Benchmark ratios",
        "",
        f"{meta.get('date', '')} to {meta.get('finished', '?')}, commit {meta.get('commit', '?')}{dirty}; "
        f"{meta.get('cpus', '?')} CPUs "
        f"({meta.get('processor', '')}), torch {meta.get('torch', '?')} (threads: see each row's setup); "
        f"load average (1, 5, 15 min) {load[0]} at the start, {load[1]} at the end. "
        "Each ratio is median(numerator) / median(denominator) over interleaved rounds.",
        "",
        "| ratio | numerator (median) | denominator (median) | ratio | target | met | rounds | setup |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        setup = ", ".join(f"{k}={v}" for k, v in r.setup.items())
        target = "—" if r.target is None else f"{r.direction} {r.target:g}"
        lines.append(
            f"| {r.name} | {r.numerator.label}: {_number(r.numerator.median)} {r.numerator.unit} "
            f"| {r.denominator.label}: {_number(r.denominator.median)} {r.denominator.unit} "
            f"| **{r.ratio:.3f}** | {target} | {r.verdict()} | {r.rounds} | {setup} |"
        )
    if figures:
        lines += [
            "",
            "Single measurements (bytes written, peak resident memory):",
            "",
            "| figure | value | limit | met | setup |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in figures:
            setup = ", ".join(f"{k}={v}" for k, v in f.setup.items())
            limit = "—" if f.limit is None else f"{f.direction} {f.limit:g} {f.unit}"
            lines.append(f"| {f.name} | **{_number(f.value)} {f.unit}** | {limit} | {f.verdict()} | {setup} |")
    return "\n".join(lines) + "\n"


def write_table(
    records: Sequence[RatioRecord], folder: Path, meta: Mapping[str, Any], figures: Sequence[Figure] = ()
) -> tuple[Path, Path]:
    """Write ``ratios.json`` (meta, every record with all rounds, the figures) and ``ratios.md`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "version": 1,
        "meta": dict(meta),
        "ratios": [asdict(r) for r in records],
        "figures": [asdict(f) for f in figures],
    }
    json_path, md_path = folder / "ratios.json", folder / "ratios.md"
    json_path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    md_path.write_text(markdown(records, meta, figures), encoding="utf-8")
    return json_path, md_path
