"""The leaderboard page as data: sections of paragraphs, tables and figures, written out by ``render``.

Everything here is plain text built from ``RunRecord``s; the HTML and Markdown writers escape
it. One model feeds both pages, so they show the same tables. No matplotlib here: the figures
are made by ``harness.leaderboard.figures`` and only inserted into the sections.

Results are compared only within a comparability key: task name, task version, data
fingerprint, reported split, metric and the metric's recorded direction. Rows of one key are
ranked by that recorded direction (``higher_is_better``), never by a guess from the metric name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from harness.leaderboard.compare import boards, key_title, newest_first
from harness.leaderboard.records import Interval, PredictorRecord, ResultRow, RunRecord, ScoreRecord

NA = "n/a"  # a value the record does not have (None): never shown as 0
NOT_APPLICABLE = "—"  # a column that does not apply to the row (the gap of an STL row)


@dataclass(frozen=True)
class Paragraph:
    text: str
    note: bool = False  # a smaller aside (a reason, a caveat) rather than an explanation


@dataclass(frozen=True)
class Definitions:
    items: list[tuple[str, str]]  # (term, what it means)


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    columns: str  # one letter per column: "r" a number (right, one line), "l" a short text (one line), "w" wraps
    id: str = ""
    notes: list[str] = field(default_factory=list)  # shown under the title, before the rows
    footnotes: list[str] = field(default_factory=list)  # shown after the rows

    def __post_init__(self) -> None:
        assert len(self.columns) == len(self.headers) and all(len(r) == len(self.headers) for r in self.rows)


@dataclass(frozen=True)
class Figure:
    id: str  # unique in the page; also the SVG file name under figures/
    title: str
    caption: str
    svg: str  # an <svg> element, ids prefixed with ``id``


Block = Paragraph | Definitions | Table | Figure


@dataclass
class Section:
    id: str
    title: str
    level: int = 2
    blocks: list[Block] = field(default_factory=list)


# ---------------------------------------------------------------- formatting


def num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(ci: Interval | None, digits: int = 3, signed: bool = False) -> str:
    return NA if ci is None else f"[{num(ci.low, digits, signed)}, {num(ci.high, digits, signed)}]"


def with_ci(value: float | None, ci: Interval | None, digits: int = 3, signed: bool = False) -> str:
    """ "0.535 [0.454, 0.616]"; "n/a" without a value; the interval as "[n/a]" when only it is missing."""
    if value is None:
        return NA
    return f"{num(value, digits, signed)} {interval(ci, digits, signed) if ci else '[CI n/a]'}"


def score_text(score: ScoreRecord | None) -> str:
    return NA if score is None else with_ci(score.value, score.ci95, 2, signed=True)


def p_text(p: float | None) -> str:
    return NA if p is None else f"{p:.2g}"


def percent(share: float | None) -> str:
    if share is None or not math.isfinite(share):
        return NA
    value = 100 * share
    if value == 0 or abs(value) >= 10:
        return f"{value:.0f}%"
    return f"{value:.{max(0, 1 - math.floor(math.log10(abs(value))))}f}%"


def date(when: datetime, zone: bool = True) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC" if zone else "%Y-%m-%d %H:%M")


def group_label(row: ResultRow, run_tasks: Sequence[str]) -> str:
    """ "alone" for STL; "with b, c" for MTL, "(all N tasks)" when the group is every task of the run."""
    if row.kind == "stl":
        return "alone"
    others = [t for t in row.group if t != row.task]
    suffix = f" (all {len(run_tasks)} tasks)" if sorted(row.group) == sorted(run_tasks) else ""
    return "with " + ", ".join(others) + suffix


def all_task_row(record: RunRecord, task: str) -> ResultRow | None:
    """The primary-metric row of ``task`` in the group of every task of the run (the all-task MTL model)."""
    every = sorted(t.name for t in record.tasks)
    return next(
        (r for r in record.results if r.task == task and r.primary and r.kind == "mtl" and sorted(r.group) == every),
        None,
    )


def stl_row(record: RunRecord, task: str) -> ResultRow | None:
    return next((r for r in record.results if r.task == task and r.primary and r.kind == "stl"), None)


# ---------------------------------------------------------------- the leaderboard tables


LEADERBOARD_HEADERS = [
    "#",
    "run",
    "date",
    "model",
    "profile",
    "trained",
    "kind",
    "mean [95% CI]",
    "seeds",
    "gap vs STL [95% CI]",
    "train s",
    "examples/s",
    "peak MB",
    "procs",
    "device",
]
_LEADERBOARD_COLUMNS = "rllllwlrrrrrrrl"


def leaderboard_tables(records: Sequence[RunRecord]) -> list[Table]:
    """One ranked table per comparability key; a later key of the same task says why it stands apart."""
    tables = []
    entries = [(record, row) for record in records for row in record.results]
    for n, (key, rows, note) in enumerate(boards(entries)):
        tables.append(
            Table(
                title=key_title(key),
                headers=LEADERBOARD_HEADERS,
                rows=[_leaderboard_row(i + 1, rec, row) for i, (rec, row) in enumerate(rows)],
                columns=_LEADERBOARD_COLUMNS,
                id=f"key-{n + 1}",
                notes=[f"Not compared with the table above: {note}."] if note else [],
            )
        )
    return tables


def _leaderboard_row(rank: int, record: RunRecord, row: ResultRow) -> list[str]:
    c = row.cost
    if row.kind == "stl" or not row.primary:  # the gap is measured on the primary metric only
        gap = NOT_APPLICABLE
    elif row.gap is None:
        gap = NA
    else:
        gap = with_ci(row.gap.mean, row.gap.ci95, signed=True)
    return [
        str(rank),
        record.run_id,
        date(record.provenance.finished, zone=False),
        record.model.name,
        record.provenance.profile,
        group_label(row, [t.name for t in record.tasks]),
        row.kind.upper(),
        with_ci(row.mean, row.ci95),
        str(sum(v is not None for v in row.values)) + (f" of {len(row.seeds)}" if None in row.values else ""),
        gap,
        num(c.train_seconds, 1),
        num(c.examples_per_second, 1),
        num(c.peak_memory_mb, 0),
        str(c.processes),
        c.device or NA,
    ]


# ---------------------------------------------------------------- at a glance and predictors


GLANCE_HEADERS = [
    "run",
    "model",
    "tasks",
    "seeds",
    "all-task model: helped / hurt / unclear",
    "mean gap (all tasks)",
    "best predictor (ρ vs pair gaps)",
    "noise ceiling",
    "lowest-regret grouper",
]


def glance_table(records: Sequence[RunRecord]) -> Table:
    rows = []
    for record in newest_first(records):
        gaps = [r.gap if (r := all_task_row(record, t.name)) else None for t in record.tasks]
        cis = [g.ci95 for g in gaps if g is not None and g.mean is not None and g.ci95 is not None]
        helped, hurt = sum(c.low > 0 for c in cis), sum(c.high < 0 for c in cis)
        missing = len(gaps) - len(cis)
        known = [g.mean for g in gaps if g is not None and g.mean is not None]
        verdict = f"{helped} / {hurt} / {len(cis) - helped - hurt}" + (f" (n/a: {missing})" if missing else "")
        rows.append(
            [
                record.run_id,
                record.model.name,
                str(len(record.tasks)),
                str(len(record.seeds)),
                verdict,
                num(sum(known) / len(known), signed=True) if known else NA,
                _best_predictor(record.predictors),
                num(record.noise_ceiling.value, 2, signed=True) if record.noise_ceiling else NA,
                _best_grouper(record),
            ]
        )
    return Table(
        "One line per run, newest first",
        GLANCE_HEADERS,
        rows,
        "llrrrrwrw",
        id="glance-table",
    )


def _best_predictor(predictors: Sequence[PredictorRecord]) -> str:
    scored = [p for p in predictors if p.pairs is not None]
    if not scored:
        return NA
    top = max(p.pairs.value for p in scored if p.pairs)
    best = sorted(p.name for p in scored if p.pairs and p.pairs.value == top)
    tied = f" (tied: {', '.join(best[1:])})" if len(best) > 1 else ""
    return f"{best[0]} {score_text(next(p.pairs for p in scored if p.name == best[0]))}{tied}"


def _best_grouper(record: RunRecord) -> str:
    known = [g for g in record.groupers if g.regret is not None]
    if not known:
        return NA
    low = min(g.regret for g in known if g.regret is not None)
    names = sorted(g.grouper for g in known if g.regret == low)
    return f"{', '.join(names)} (regret {num(low)})"


PREDICTOR_HEADERS = [
    "predictor",
    "what it measures",
    "ρ vs pair gaps [95% CI]",
    "p",
    "pairs",
    "ρ vs group gaps [95% CI]",
    "p (groups)",
    "share of noise ceiling",
    "neg.-transfer F1",
    "cost share",
    "seconds",
]


def predictor_table(record: RunRecord) -> Table:
    """The run's predictors, best Spearman rho against the pair gaps first; notes every row shares go above."""
    predictors = sorted(record.predictors, key=lambda p: (p.pairs is None, -(p.pairs.value if p.pairs else 0), p.name))
    per_row = [[*([p.error] if p.error else []), *[n for n in p.notes if n != p.error]] for p in predictors]
    shared = [n for n in per_row[0] if all(n in notes for notes in per_row)] if per_row else []
    rows = []
    for p in predictors:
        rows.append(
            [
                p.name,
                p.description or NA,
                score_text(p.pairs),
                p_text(p.pairs.p_value) if p.pairs else NA,
                str(p.pairs.n) if p.pairs else NA,
                score_text(p.groups),
                p_text(p.groups.p_value) if p.groups else NA,
                percent(p.fraction_of_ceiling),
                num(p.negative_transfer_f1, 2),
                percent(p.cost_share),
                num(p.seconds, 1),
            ]
        )
    ceiling = record.noise_ceiling
    notes = [f"Every predictor: {n}" for n in shared]
    notes.append(
        f"Noise ceiling: ρ = {num(ceiling.value, 2, signed=True)} over {ceiling.n} pairs ({ceiling.method})."
        if ceiling
        else "Noise ceiling: n/a (needs pair gaps on at least 2 seeds)."
    )
    footnotes = [
        f"{p.name}: {'; '.join(own)}"
        for p, notes in zip(predictors, per_row, strict=True)
        if (own := [n for n in notes if n not in shared])
    ]
    return Table(
        f"Predictors of run {record.run_id}",
        PREDICTOR_HEADERS,
        rows,
        "lwrrrrrrrrr",
        id=f"predictors-{record.run_id}",
        notes=notes,
        footnotes=footnotes,
    )
