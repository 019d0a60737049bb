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
