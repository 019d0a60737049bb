"""Human views of a run's results: the gap table per task, and the whole report (``harness show``).

The report's other parts live in ``sections`` (group, score and grouper tables) and
``matrices`` (heatmaps); this module puts them in order and prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from harness.protocol.results import RunResults


def _fmt(value: float | None, ci: list[float] | None = None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if ci is not None:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def results_table(results: RunResults | dict[str, Any], title: str = "MTL - STL gap per task") -> Table:
    """STL, MTL (the all-task group) and the gap per task, on each task's primary metric."""
    results = _typed(results)
    seeds = len(results.plan["seeds"])
    interval = "; mean and 95% t-interval over seeds" if seeds > 1 else "; no interval with one seed"
    table = Table(title=f"{title} ({seeds} seed{'s' if seeds != 1 else ''}{interval})", title_justify="left")
    for column, justify in (
        ("task", "left"),
        ("metric", "left"),
        ("split", "left"),
        ("STL", "right"),
        ("MTL", "right"),
        ("gap (MTL-STL)", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, entry in results.tasks.items():
        primary = entry["primary"]
        stl = entry["stl"][primary]
        mtl = entry.get("mtl", {}).get(primary, {})
        gap = entry.get("gap", {})
        table.add_row(
            name,
            primary
            + ("" if entry["higher_is_better"] else " (lower is better)")
            + (" (thresholds tuned on dev)" if entry.get("thresholds") == "tuned" else ""),
            entry["split"],
            _fmt(stl.get("mean")),
            _fmt(mtl.get("mean")) if mtl else "-",
            _fmt(gap.get("mean"), gap.get("ci95"), signed=True) if gap else "-",
        )
    return table


SECTIONS = ("gaps", "predictors", "scores", "groupers")
"""What ``print_report`` can print: gaps (per task, per trained group, by group size), the
predictor and pair-gap heatmaps, the predictor scores, the groupers."""


def _typed(results: RunResults | dict[str, Any]) -> RunResults:
    return results if isinstance(results, RunResults) else RunResults.from_json(results)


def _emit(items: list[Table | str]) -> None:
    """Tables through ``print_table``, lines as plain text; one blank line between blocks.

    A block starts at a titled table, at a line directly followed by an untitled table (a
    heatmap's title line), and after an empty string (a section break).
    """
    from harness.report.console import console, print_table

    pending = printed = False
    for k, item in enumerate(items):
        nxt = items[k + 1] if k + 1 < len(items) else None
        heading = isinstance(item, str) and isinstance(nxt, Table) and not nxt.title
        if item == "" or heading or (isinstance(item, Table) and item.title):
            pending = True
        if item == "":
            continue
        if pending and printed:
            console.print()
        pending, printed = False, True
        if isinstance(item, str):
            console.print(item, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            print_table(item)


def report_items(
    results: RunResults,
    sections: Sequence[str] = SECTIONS,
    *,
    layers: bool = False,
    title: str = "",
    gap_table: bool = True,
) -> list[Table | str]:
    """What ``print_report`` prints, in order: tables and lines of text.

    ``layers``: the per-layer heatmaps too; ``title``: what the gap table's title starts with
    (the run directory); ``gap_table=False`` leaves the gap table per task out of "gaps".

    An unavailable predictor is listed once with its reason: in the predictors section, or,
    without it, under the score table.
    """
    from harness.report.matrices import matrix_section, unavailable_lines
    from harness.report.sections import (
        ceiling_lines,
        gap_by_size_table,
        groupers_table,
        groups_table,
        scores_table,
    )

    items: list[Table | str] = []
    if "gaps" in sections and gap_table:
        items.append(
            results_table(results, title=f"{title}: MTL - STL gap per task" if title else "MTL - STL gap per task")
        )
    if "gaps" in sections:
        if results.groups:
            items.append(groups_table(results))
        if results.gap_by_size:
            items.append(gap_by_size_table(results))
            items.append(
                "if the mean gap falls as groups grow, the gaps come from how many tasks share one model "
                "more than from which tasks share it"
            )
    if "predictors" in sections:
        items += ["", *matrix_section(results, layers=layers)]
    if "scores" in sections:
        items.append("")
        table, notes = scores_table(results)
        if table.row_count:
            items.append(table)
        items += notes
        items += ceiling_lines(results)
        if "predictors" not in sections:
            items += ["", *unavailable_lines(results)]
    if "groupers" in sections and results.groupers:
        items += ["", groupers_table(results)]
    return items


def print_report(
    results: RunResults | dict[str, Any], sections: Sequence[str] = SECTIONS, *, layers: bool = False, title: str = ""
) -> None:
    """The report of a run (``harness show``) on the console: the ``sections`` asked for, in ``SECTIONS`` order."""
    _emit(report_items(_typed(results), sections, layers=layers, title=title))


def print_science(results: RunResults | dict[str, Any]) -> None:
    """Everything after the gap table (``harness run`` prints that first): groups, heatmaps, scores, groupers."""
    _emit(report_items(_typed(results), SECTIONS, gap_table=False))
