"""Human views of a run's results: a rich table of STL, MTL and the gap per task."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _fmt(value: float | None, ci: list[float] | None = None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if ci is not None:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def results_table(results: dict[str, Any], title: str = "MTL - STL gap per task") -> Table:
    seeds = len(results["plan"]["seeds"])
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
    for name, entry in results["tasks"].items():
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


def _score_cell(score: dict[str, Any] | None) -> str:
    if not score:
        return "-"
    text = f"{score['value']:+.2f}"
    if score.get("ci_low") is not None:
        text += f" [{score['ci_low']:+.2f}, {score['ci_high']:+.2f}]"
    if score.get("p_value") is not None:
        text += f" p={score['p_value']:.3f}"
    return text


def scores_table(results: dict[str, Any]) -> Table:
    """Per predictor: rho against pair gaps and group gaps, share of the noise ceiling, detection, cost."""
    table = Table(
        title="predictor scores (Spearman rho [95% CI] p; higher = predicts the gap better)", title_justify="left"
    )
    for column in (
        "predictor",
        "vs pair gaps",
        "of ceiling",
        "vs group gaps",
        "neg. transfer F1",
        "cost share",
        "notes",
    ):
        table.add_column(column)
    for name, s in results.get("scores", {}).get("predictors", {}).items():
        det = s.get("negative_transfer") or {}
        table.add_row(
            name,
            _score_cell(s.get("pairs")),
            "-" if s.get("fraction_of_ceiling") is None else f"{s['fraction_of_ceiling']:.2f}",
            _score_cell(s.get("groups")),
            "-" if det.get("f1") is None else f"{det['f1']:.2f}",
            "-" if s.get("cost_share") is None else f"{s['cost_share']:.3f}",
            "; ".join(s.get("notes", []))[:80],
        )
    return table


def groupers_table(results: dict[str, Any]) -> Table:
    table = Table(
        title="groupers: partition, mean gap over tasks, regret vs the best measured partition", title_justify="left"
    )
    for column in ("grouper", "groups", "mean gap", "regret", "rank", "cost (s)"):
        table.add_column(column)
    for name, g in results.get("groupers", {}).items():
        groups = " | ".join("+".join(x) for x in g["partition"]) if g.get("partition") else g.get("note", "-")
        table.add_row(
            name,
            groups,
            _fmt(g.get("mean_gap"), signed=True),
            _fmt(g.get("regret")),
            "-" if g.get("rank") is None else str(g["rank"]),
            f"{g.get('cost_seconds', 0.0):.0f}",
        )
    return table


def print_science(results: dict[str, Any]) -> None:
    """The predictor-score and grouper tables, and the noise ceiling, after the gap table."""
    from harness.report.console import console, print_table

    ceiling = results.get("scores", {}).get("noise_ceiling")
    if results.get("scores", {}).get("predictors"):
        print_table(scores_table(results))
    if ceiling:
        console.print(
            f"noise ceiling (split-half rho of the pair gaps across seeds): {ceiling['value']:+.2f}, "
            f"Spearman-Brown corrected {ceiling['corrected']:+.2f}"
            if ceiling.get("corrected") is not None
            else ""
        )
    for note in results.get("scores", {}).get("notes", []):
        console.print(f"note: {note}")
    if results.get("groupers"):
        print_table(groupers_table(results))
