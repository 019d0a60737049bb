"""Which leaderboard results may be compared, and rankings by each metric's registered direction.

Two results are compared only when they share a comparability key: task name, task version,
data fingerprint, reported split and metric with its recorded direction. Anything else measures
something different; the views (``harness leaderboard show``, the rendered pages) put it in
another table and say why (``why_not_compared``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from harness.leaderboard.records import ResultRow, RunRecord

Entry = tuple[RunRecord, ResultRow]  # one result of one run


class Key(NamedTuple):
    """What must be equal for two results to be compared."""

    task: str
    version: str
    data_fingerprint: str
    split: str
    metric: str
    higher_is_better: bool


_KEY_PARTS = (
    ("version", "task version"),
    ("data_fingerprint", "data fingerprint"),
    ("split", "reported split"),
    ("metric", "metric"),
    ("higher_is_better", "metric direction (higher_is_better)"),
)


def short_hash(text: str) -> str:
    return text[:8] + "…" if len(text) > 8 else text


def direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def newest_first(records: Sequence[RunRecord]) -> list[RunRecord]:
    return sorted(records, key=lambda r: (r.provenance.finished, r.run_id), reverse=True)


def key_of(record: RunRecord, row: ResultRow) -> Key:
    task = record.task(row.task)
    return Key(row.task, task.version, task.data_fingerprint, row.split, row.metric, row.higher_is_better)


def key_title(key: Key) -> str:
    return (
        f"{key.task} · {key.metric} ({direction(key.higher_is_better)}) · {key.split} split · "
        f"task version {key.version} · data {short_hash(key.data_fingerprint)}"
    )


def why_not_compared(key: Key, other: Key) -> str:
    """ "data fingerprint differs (a1b2c3d4… vs c3d4e5f6…)"; every differing part, joined."""
    parts = []
    for name, label in _KEY_PARTS:
        a, b = getattr(key, name), getattr(other, name)
        if a != b:
            shown = (short_hash(a), short_hash(b)) if name == "data_fingerprint" else (a, b)
            parts.append(f"{label} differs ({shown[0]} vs {shown[1]})")
    return "; ".join(parts)


def ranked(key: Key, rows: Sequence[Entry]) -> list[Entry]:
    """Best first by the recorded direction; rows without a mean last; ties: newer run, then group."""
    sign = -1.0 if key.higher_is_better else 1.0
    newest = {r.run_id: n for n, r in enumerate(newest_first([rec for rec, _ in rows]))}

    def rank(item: Entry) -> tuple[bool, float, int, int, str]:
        rec, row = item
        return (row.mean is None, sign * (row.mean or 0.0), newest[rec.run_id], len(row.group), row.group_key)

    return sorted(rows, key=rank)


def boards(entries: Iterable[Entry]) -> list[tuple[Key, list[Entry], str | None]]:
    """(key, ranked entries, why it is not compared with an earlier table) per comparability key.

    Keys are ordered by task, primary metric first, then metric, split, version, fingerprint, so
    that the tables of one task and metric follow each other. The note says why a table is not
    merged with the first table of the same task and metric (None for that first one: another
    metric is a table of its own, with nothing to explain).
    """
    by_key: dict[Key, list[Entry]] = {}
    for record, row in entries:
        by_key.setdefault(key_of(record, row), []).append((record, row))
    order = sorted(
        by_key,
        key=lambda k: (
            k.task,
            not any(r.primary for _, r in by_key[k]),
            k.metric,
            k.split,
            k.version,
            k.data_fingerprint,
        ),
    )
    out = []
    first: dict[tuple[str, str], Key] = {}
    for key in order:
        earlier = first.setdefault((key.task, key.metric), key)
        note = why_not_compared(key, earlier) if earlier != key else None
        out.append((key, ranked(key, by_key[key]), note))
    return out
