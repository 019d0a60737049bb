"""The report's tables beyond the gap table: trained groups, gap by group size, predictor scores, groupers.

Every function reads the typed results (``RunResults`` and the classes it holds) and returns a
rich ``Table`` or lines of text; printing is ``harness.report.tables``'s job.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from harness.protocol.results import GapEstimate, PredictorScore, RunResults
from harness.report.format import MISSING, joined, number, percent, seconds, with_interval
from harness.scoring.score import DetectionScore, Score


def _table(title: str, columns: list[tuple[str, str]]) -> Table:
    table = Table(title=Text(title), title_justify="left")  # Text: brackets in titles are not markup
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    return table


def _sign(estimate: GapEstimate) -> str:
    """ "below" / "above" when the 95 % interval lies below / above 0, else ""."""
    if estimate.ci95 is None or None in estimate.ci95:
        return ""
    low, high = estimate.ci95
    return "below" if high < 0 else "above" if low > 0 else ""


def groups_table(results: RunResults) -> Table:
    """One row per member of every trained group (smallest groups first): its gap [CI] and who proposed the group."""
    table = _table(
        "trained groups: each member's gap (MTL on the group - STL), mean [95% CI] over seeds; "
        "sources = what proposed the group",
        [("group", "left"), ("size", "right"), ("sources", "left"), ("task", "left"), ("gap", "right"),
         ("CI vs 0", "left"), ("seeds", "right"), ("train s", "right")],
    )  # fmt: skip
    tasks = list(results.plan.get("tasks", []))
    order = sorted(range(len(results.groups)), key=lambda k: len(results.groups[k]["tasks"]))
    for k in order:
        group = results.groups[k]
        first = True
        for task in group["tasks"]:
            est = GapEstimate.from_json(group["gaps"][task]) if task in group.get("gaps", {}) else None
            head = [joined(group["tasks"], tasks), str(len(group["tasks"])), ", ".join(group.get("sources", []))]
            table.add_row(
                *(Text(c) for c in (head if first else ["", "", ""])),
                Text(task),
                with_interval(est.mean, est.ci95) if est else MISSING,
                _sign(est) if est else "",
                str(est.n) if est else "0",
                seconds(group.get("seconds")) if first else "",
                end_section=task == group["tasks"][-1],
            )
            first = False
    return table


def gap_by_size_table(results: RunResults) -> Table:
    """Mean and worst gap per group size: does sharing cost more as more tasks share one model?"""
    table = _table(
        "gap by group size, over (task, group) points",
        [("size", "right"), ("groups", "right"), ("points", "right"), ("mean gap", "right"), ("min gap", "right")],
    )
    groups_of: dict[int, int] = {}
    for group in results.groups:
        groups_of[len(group["tasks"])] = groups_of.get(len(group["tasks"]), 0) + 1
    for row in results.gap_by_size:
        table.add_row(
            str(row["size"]),
            str(groups_of.get(row["size"], 0)),
            str(row["points"]),
            number(row.get("mean_gap"), signed=True),
            number(row.get("min_gap"), signed=True),
        )
    return table


def _score(data: dict[str, Any] | None) -> str:
    """ "+0.62 [+0.10, +0.90] p=0.012" for a Score dict; "-" when absent."""
    if not data:
        return MISSING
    s = Score.from_dict(data)
    text = number(s.value, 2, signed=True)
    if s.ci_low is not None and s.ci_high is not None:
        text += f" [{number(s.ci_low, 2, True)}, {number(s.ci_high, 2, True)}]"
    return text + (f" p={s.p_value:.3f}" if s.p_value is not None else "")


def _detection(data: dict[str, Any] | None) -> str:
    if not data:
        return MISSING
    d = DetectionScore.from_dict(data)
    return " ".join(number(v, 2) for v in (d.precision, d.recall, d.f1))


def scored(score: PredictorScore) -> bool:
    """Whether any score of the predictor was computed (else it is listed as unavailable)."""
    return any(x is not None for x in (score.pairs, score.groups, score.negative_transfer))


def scores_table(results: RunResults) -> tuple[Table, list[str]]:
    """The scored predictors, best rho against the pair gaps first, and the numbered notes of the table.

    Each note (why a score or its interval is missing) is printed once under the table and cited
    by number in the rows it concerns.
    """
    table = _table(
        "predictor scores: Spearman rho [95% CI] p against the measured gaps (higher = predicts them better)",
        [("predictor", "left"), ("rho vs pair gaps", "right"), ("of ceiling", "right"),
         ("rho vs group gaps", "right"), ("neg. transfer P R F1", "right"), ("cost share", "right"),
         ("notes", "left")],
    )  # fmt: skip
    notes: list[str] = []
    scores = [s for s in results.predictor_scores().values() if scored(s)]
    scores.sort(key=lambda s: -s.pairs["value"] if s.pairs else float("inf"))
    for s in scores:
        cited = []
        for note in s.notes:
            if note not in notes:
                notes.append(note)
            cited.append(f"[{notes.index(note) + 1}]")
        table.add_row(
            Text(s.predictor),
            _score(s.pairs),
            number(s.fraction_of_ceiling, 2),
            _score(s.groups),
            _detection(s.negative_transfer),
            percent(s.cost_share),
            Text(" ".join(cited)),
        )
    return table, [f"[{k}] {note}" for k, note in enumerate(notes, start=1)]


def ceiling_lines(results: RunResults) -> list[str]:
    """The noise ceiling (or why there is none), the run's scoring notes, and how many pairs are negative."""
    lines = []
    data = results.scores.get("noise_ceiling")
    if data:
        c = Score.from_dict(data)
        line = f"noise ceiling: split-half rho of the pair gaps across seeds {number(c.value, 2, True)} ({c.n} pairs)"
        if c.corrected is not None and c.corrected > 0:
            line += (
                f"; Spearman-Brown reliability {number(c.corrected, 2, True)}: a perfect predictor reaches rho "
                f'about {c.corrected**0.5:.2f} ("of ceiling" = rho / {c.corrected**0.5:.2f})'
            )
        lines.append(line)
    else:
        lines.append("noise ceiling: not measured")
    lines += [f"note: {note}" for note in results.scores.get("notes", [])]
    sweep = results.scores.get("pair_sweep")
    if sweep and sweep.get("seconds"):
        how = "estimated as the pair jobs x the mean STL job" if sweep.get("estimated") else "measured"
        lines.append(f"cost share = a predictor's seconds over the pairwise sweep's {sweep['seconds']:.0f} s ({how})")
    detections = [s.negative_transfer for s in results.predictor_scores().values() if s.negative_transfer]
    if detections:
        d = DetectionScore.from_dict(detections[0])
        lines.append(
            f"negative transfer: {len(d.significant)} of {d.n} measured ordered pairs have a gap whose "
            f"{1 - d.alpha:.0%} interval lies below 0; P R F1 = precision, recall, F1 of flagging them "
            "by a low predictor value"
        )
    return lines


def groupers_table(results: RunResults) -> Table:
    """Each grouper's partition, its mean gap over tasks, regret against the best measured partition, rank and cost."""
    table = _table(
        "groupers: chosen groups, mean gap over tasks (a task alone counts 0), regret vs the best measured "
        "partition (0 = best), cost in training seconds",
        [("grouper", "left"), ("groups", "left"), ("mean gap", "right"), ("regret", "right"), ("rank", "right"),
         ("cost (s)", "right"), ("note", "left")],
    )  # fmt: skip
    for name, g in results.grouper_results().items():
        groups = " | ".join(" + ".join(group) for group in g.partition) if g.partition else MISSING
        table.add_row(
            Text(name),
            Text(groups),
            number(g.mean_gap, signed=True),
            number(g.regret),
            MISSING if g.rank is None else str(g.rank),
            seconds(g.cost_seconds),
            Text(g.note),
        )
    return table
