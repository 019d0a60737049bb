"""Which leaderboard results may be compared, and rankings by each metric's registered direction.

Two results are compared only when they share a comparability key: task name, task version,
data fingerprint, reported split and metric (direction included). Anything else measures
something different; the views put it in another table and say why (``why_not_compared``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.leaderboard.records import ResultRow, RunRecord


@dataclass(frozen=True, order=True)
class Key:
    task: str
    version: str
    data_fingerprint: str
    split: str
    metric: str
    higher_is_better: bool

    def label(self) -> str:
        arrow = "higher is better" if self.higher_is_better else "lower is better"
        return (
            f"{self.task} v{self.version} · {self.metric} ({arrow}) · {self.split} split · "
            f"data {self.data_fingerprint[:8]}"
        )


@dataclass(frozen=True)
class Entry:
    """One result of one run: the record it came from and the row."""

    record: RunRecord
    row: ResultRow


def key_of(record: RunRecord, row: ResultRow) -> Key:
    task = record.task(row.task)
    return Key(row.task, task.version, task.data_fingerprint, row.split, row.metric, row.higher_is_better)


def why_not_compared(a: Key, b: Key) -> str:
    """Why results under ``b`` are not compared with those under ``a`` (same task name)."""
    parts = []
    if a.version != b.version:
        parts.append(f"task version differs ({a.version} vs {b.version})")
    if a.data_fingerprint != b.data_fingerprint:
        parts.append(f"data fingerprint differs ({a.data_fingerprint[:8]}… vs {b.data_fingerprint[:8]}…)")
    if a.split != b.split:
        parts.append(f"reported on another split ({a.split} vs {b.split})")
    if a.metric != b.metric:
        parts.append(f"another metric ({a.metric} vs {b.metric})")
    elif a.higher_is_better != b.higher_is_better:
        parts.append(f"metric {a.metric!r} has another registered direction")
    return "; ".join(parts) or "same key"


def ranked(entries: Sequence[Entry]) -> list[Entry]:
    """Best first by the row's registered direction; rows without a value last."""

    def order(e: Entry) -> tuple[int, float]:
        mean = e.row.mean
        if mean is None or not math.isfinite(mean):
            return (1, 0.0)
        return (0, -mean if e.row.higher_is_better else mean)

    return sorted(entries, key=order)


def boards(records: Iterable[RunRecord], rows: Iterable[Entry] | None = None) -> dict[Key, list[Entry]]:
    """Entries grouped by comparability key, keys in (task, version, ...) order, each ranked."""
    entries = list(rows) if rows is not None else [Entry(r, row) for r in records for row in r.results]
    grouped: dict[Key, list[Entry]] = {}
    for e in entries:
        grouped.setdefault(key_of(e.record, e.row), []).append(e)
    return {k: ranked(grouped[k]) for k in sorted(grouped)}


def not_compared_notes(keys: Sequence[Key]) -> dict[Key, str]:
    """For each key after the first of its (task, metric): why it is not compared with that first one."""
    first: dict[tuple[str, str], Key] = {}
    notes = {}
    for k in keys:
        if (k.task, k.metric) in first:
            notes[k] = why_not_compared(first[(k.task, k.metric)], k)
        else:
            first[(k.task, k.metric)] = k
    return notes
