"""The leaderboard's figures: matplotlib (Agg canvas, no pyplot state) drawn to SVG text, one run at a time.

Imported only by ``harness.leaderboard.render``, after it has checked that matplotlib (the
``render`` extra) is installed. Each builder returns a ``page.Figure`` (title, caption, SVG) or
a one-line reason why the figure is left out. Missing values (None) are drawn as grey cells or
written "n/a", never as 0.

The SVG is deterministic (``svg.hashsalt`` fixed, no date in the metadata, text kept as text)
so a rerender of the same records diffs clean, and every ``id`` in it is prefixed with the
figure's id so that many SVGs can be inlined in one HTML page without clashing.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from harness.leaderboard.page import NA, Figure, all_task_row, num, stl_row
from harness.leaderboard.records import Matrix, PredictorRecord, RunRecord, ScoreRecord

STYLE: Any = {  # an rcParams dict (typed Any: matplotlib types the keys as a Literal)
    "svg.hashsalt": "harness-leaderboard",
    "svg.fonttype": "none",  # text stays text: small, crisp, searchable
    "font.family": "DejaVu Sans",
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.labelsize": 8.5,
    "figure.titlesize": 11,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
MISSING_COLOUR = "#c8c8c8"
STL_COLOUR, MTL_COLOUR = "#4c72b0", "#dd8452"
ANNOTATE_MAX_TASKS = 6  # write the value in each heatmap cell up to this many tasks


def to_svg(fig: MplFigure, fig_id: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog or metadata, compact, ids unique to ``fig_id``."""
    FigureCanvasAgg(fig)
    buf = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = _compact(text, "f" + hashlib.sha256(fig_id.encode()).hexdigest()[:6] + "-")
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1).strip() + "\n"


_REFERENCE = re.compile(r'(?:url\(#|href="#)([^)"]+)')
_ID = re.compile(r'\sid="([^"]+)"')
_GEOMETRY = re.compile(r'(\s(?:d|x|y|x1|x2|y1|y2|width|height|transform|points)=")([^"]*)"')


def _compact(svg: str, prefix: str) -> str:
    """Drop ids nothing refers to, prefix the others (many SVGs share one page), round coordinates to 0.01."""
    used = set(_REFERENCE.findall(svg))
    svg = _ID.sub(lambda m: f' id="{prefix}{m.group(1)}"' if m.group(1) in used else "", svg)
    svg = _REFERENCE.sub(lambda m: m.group(0).replace("#", "#" + prefix, 1), svg)
    svg = _GEOMETRY.sub(lambda m: m.group(1) + re.sub(r"(\.\d\d)\d+", r"\1", m.group(2)) + '"', svg)
    return re.sub(r"\n[ \t]+", "\n", svg)  # indentation only: a text element sits on one line


def _new(width: float, height: float) -> MplFigure:
    with matplotlib.rc_context(STYLE):
        return MplFigure(figsize=(width, height), layout="constrained")


def _build(fig_id: str, title: str, caption: str, draw: Callable[[], MplFigure]) -> Figure:
    with matplotlib.rc_context(STYLE):
        fig = draw()
        fig.set_figwidth(max(fig.get_figwidth(), min(10.0, 0.085 * len(title) + 0.6)))  # room for the title
        fig.suptitle(_t(title))
        return Figure(fig_id, title, caption, to_svg(fig, fig_id, title))


def _t(text: str) -> str:
    """Record text as matplotlib text: a "$" would otherwise start mathtext (and an odd one raise)."""
    return text.replace("$", r"\$")


def _values(matrix: Matrix) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)


# ---------------------------------------------------------------- a. STL vs MTL


def stl_vs_mtl(record: RunRecord, fig_id: str) -> Figure | str:
    tasks = [t.name for t in record.tasks]
    pairs = [(stl_row(record, t), all_task_row(record, t)) for t in tasks]
    if all(s is None and m is None for s, m in pairs):
        return "no primary-metric STL or all-task MTL result in this run"

    def draw() -> MplFigure:
        fig = _new(max(5.0, 1.3 * len(tasks) + 2), 3.6)
        ax = fig.add_subplot()
        for offset, colour, label, which in (
            (-0.15, STL_COLOUR, "STL (alone)", 0),
            (0.15, MTL_COLOUR, "MTL (all tasks)", 1),
        ):
            for x, pair in enumerate(pairs):
                row = pair[which]
                if row is None or row.mean is None:
                    ax.text(x + offset, 0.02, NA, transform=ax.get_xaxis_transform(), ha="center", color="grey")
                    continue
                err = None
                if row.ci95 is not None:
                    err = [[row.mean - row.ci95.low], [row.ci95.high - row.mean]]
                ax.errorbar(x + offset, row.mean, yerr=err, fmt="o", color=colour, capsize=3, label=label)
                label = "_"  # one legend entry per kind
        ax.set_xticks(range(len(tasks)))
        ax.set_xticklabels([_task_tick(record, t) for t in tasks])
        ax.set_xlim(-0.6, len(tasks) - 0.4)
        ax.set_ylabel("primary metric on the reported split\n(↑/↓ under each task: better direction)")
        ax.legend(loc="best", frameon=False)
        ax.grid(axis="y", alpha=0.3)
        return fig

    caption = (
        f"Each task's primary metric, trained alone (STL, blue) and in one model with all {len(tasks)} tasks "
        f"(MTL, orange): the mean over {len(record.seeds)} seeds with its Student-t 95% interval. Tasks have "
        "different metrics, so compare the two points of a task, not tasks with each other. "
        "n/a: not measured."
    )
    return _build(fig_id, "STL vs MTL per task (all tasks in one model)", caption, draw)


def _task_tick(record: RunRecord, task: str) -> str:
    t = record.task(task)
    return f"{_t(task)}\n{_t(t.primary_metric)} {'↑' if t.higher_is_better else '↓'}"


# ---------------------------------------------------------------- b. gap per grouping


def gaps_by_group(record: RunRecord, fig_id: str) -> Figure | str:
    tasks = [t.name for t in record.tasks]
    order = {t: i for i, t in enumerate(tasks)}
    rows = [r for r in record.results if r.kind == "mtl" and r.primary]
    if not rows:
        return "no multi-task group was trained in this run"
    rows.sort(key=lambda r: (len(r.group), sorted(order[t] for t in r.group), order[r.task]))

    def draw() -> MplFigure:
        fig = _new(9.0, 1.3 + 0.24 * len(rows))
        ax = fig.add_subplot()
        colours = matplotlib.colormaps["tab10"]
        previous: list[str] | None = None
        for y, row in enumerate(rows):
            if previous is not None and sorted(row.group) != previous:
                ax.axhline(y - 0.5, color="#e0e0e0", lw=0.8)
            previous = sorted(row.group)
            gap = row.gap
            if gap is None or gap.mean is None:
                ax.text(0.01, y, NA, transform=ax.get_yaxis_transform(), va="center", color="grey")
                continue
            err = None if gap.ci95 is None else [[gap.mean - gap.ci95.low], [gap.ci95.high - gap.mean]]
            ax.errorbar(gap.mean, y, xerr=err, fmt="o", ms=4, capsize=2, color=colours(order[row.task] % 10))
        ax.axvline(0, color="black", lw=1)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([_t(f"{r.task}  {_short_group(r.task, r.group, tasks)}") for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("gap = MTL − STL, primary metric  (→ sharing helped · ← it hurt)")
        ax.grid(axis="x", alpha=0.3)
        return fig

    caption = (
        "For every group of tasks trained together, each member task's gap: its metric in the group minus its "
        "metric alone, paired by seed (sign-corrected, so positive always means sharing helped). Dots: mean over "
        "seeds; bars: 95% interval. A bar that crosses the zero line means the seeds cannot tell help from harm. "
        "Groups are separated by thin lines, smallest groups first."
    )
    return _build(fig_id, "Gap per trained group (each task in each group)", caption, draw)


def _short_group(task: str, group: Sequence[str], tasks: Sequence[str]) -> str:
    if sorted(group) == sorted(tasks):
        return f"in all {len(tasks)} tasks"
    return "with " + ", ".join(t for t in group if t != task)


# ---------------------------------------------------------------- c, d. heatmaps


def heatmap(
    fig_id: str,
    title: str,
    caption: str,
    tasks: Sequence[str],
    panels: Sequence[tuple[str, Matrix]],
    *,
    colour_label: str,
    diverging: bool,
    fixed: tuple[float, float] | None = None,
    xlabel: str = "task j",
    ylabel: str = "task i",
) -> Figure:
    """Small multiples of [T][T] matrices on one colour scale; None cells grey with "n/a"."""
    data = [_values(m) for _, m in panels]
    low, high = fixed if fixed is not None else _range(data, diverging)
    T = len(tasks)
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    side = max(1.9, 0.55 * T + 0.6)

    def draw() -> MplFigure:
        fig = _new(cols * side + 2.2, rows * side + 1.9)
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        cmap: Colormap = matplotlib.colormaps["RdBu" if diverging else "viridis"].with_extremes(bad=MISSING_COLOUR)
        mesh = None
        for k, ax in enumerate(axes.flat):
            if k >= len(panels):
                ax.set_axis_off()
                continue
            values = data[k]
            mesh = ax.pcolormesh(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high)
            ax.set_title(_t(panels[k][0]))
            ax.set_aspect("equal")
            ax.set_xticks(np.arange(T) + 0.5, [_t(t) for t in tasks], rotation=40, ha="right")
            ax.set_yticks(np.arange(T) + 0.5, [_t(t) for t in tasks])
            ax.set_ylim(T, 0)
            if T <= ANNOTATE_MAX_TASKS:
                _annotate(ax, values, cmap, low, high)
        for ax in axes[-1]:
            ax.set_xlabel(xlabel)
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel)
        assert mesh is not None
        fig.colorbar(mesh, ax=axes, shrink=0.8, label=colour_label, format="%.2g")
        return fig

    return _build(fig_id, title, caption, draw)


def _range(data: Sequence[np.ndarray], diverging: bool) -> tuple[float, float]:
    """The colour range: off-diagonal values (a diagonal of 1s would wash out CKA), symmetric when diverging."""
    off = np.concatenate([d[~np.eye(d.shape[0], dtype=bool)] for d in data]) if data else np.array([])
    off = off[np.isfinite(off)]
    if off.size == 0:
        off = np.concatenate([d[np.isfinite(d)] for d in data]) if data else off
    if off.size == 0:
        return (-1.0, 1.0) if diverging else (0.0, 1.0)
    if diverging:
        top = float(np.abs(off).max()) or 1.0
        return -top, top
    low, high = float(off.min()), float(off.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


def _annotate(ax: Any, values: np.ndarray, cmap: Colormap, low: float, high: float) -> None:
    span = high - low
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            if not math.isfinite(v):
                ax.text(j + 0.5, i + 0.5, NA, ha="center", va="center", fontsize=7, color="#555555")
                continue
            r, g, b, _ = cmap((v - low) / span if span else 0.5)
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(
                j + 0.5,
                i + 0.5,
                _cell(v, span),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )


def _cell(v: float, span: float) -> str:
    """Enough digits to tell the cells of this figure apart (CKA of a pretrained model sits near 1, TAG near 0)."""
    if span >= 0.05 or v == 0:
        return f"{v:.2f}"
    if abs(v) >= 0.1:
        return f"{v:.{min(5, 2 + max(0, -math.floor(math.log10(span))))}f}"
    return f"{v:.1e}".replace("e-0", "e-")


def per_layer_figures(record: RunRecord, run_key: str, cka: bool) -> list[Figure]:
    """One figure per predictor with per-layer matrices (CKA, or gradient cosine); identical ones are merged."""
    chosen = [p for p in record.predictors if p.per_layer and p.name.startswith("cka") == cka]
    out = []
    seen: dict[str, list[str]] = {}
    for p in chosen:
        twin = next((q for q in chosen if q.per_layer == p.per_layer and q.name in seen), None)
        if twin is not None:
            seen[twin.name].append(p.name)
            continue
        seen[p.name] = []
    for p in chosen:
        if p.name not in seen:
            continue
        out.append(_per_layer(record, p, seen[p.name], f"{run_key}-layers-{_slug(p.name)}", cka))
    return out


def _per_layer(record: RunRecord, p: PredictorRecord, same: list[str], fig_id: str, cka: bool) -> Figure:
    assert p.per_layer is not None
    also = f" The per-layer matrices of {', '.join(same)} are identical and not drawn again." if same else ""
    if cka:
        title = f"{p.name}: representation similarity of the STL models, per layer"
        caption = (
            f"{p.description or p.name}. Cell (i, j): CKA between the representations that task i's and task j's "
            "single-task models give the same inputs at that layer; 1 = the same up to rotation and scale, 0 = "
            "unrelated. Higher is read as 'more similar, so sharing should hurt less'. The colour scale is "
            "stretched to the off-diagonal values of this figure; grey/n/a: not measured."
        )
        label, diverging, fixed = "CKA (higher = more similar)", False, None
    else:
        title = f"{p.name}: gradient alignment, per layer"
        caption = (
            f"{p.description or p.name}. Cell (i, j): cosine between task i's and task j's loss gradients on that "
            "part of the shared encoder; +1 = same direction (the tasks pull together), −1 = opposite (conflict), "
            "0 = unrelated. Grey/n/a: not measured."
        )
        label, diverging, fixed = "gradient cosine (−1 conflict … +1 aligned)", True, (-1.0, 1.0)
    return heatmap(
        fig_id,
        title,
        caption + also,
        p.tasks,
        list(zip(p.layers, p.per_layer, strict=True)),
        colour_label=label,
        diverging=diverging,
        fixed=fixed,
    )


def overall_gradient_figures(record: RunRecord, run_key: str) -> list[Figure]:
    """Gradient-cosine predictors that have a matrix but no per-layer matrices."""
    out = []
    for p in record.predictors:
        if p.name.startswith("grad_cosine") and not p.per_layer and p.matrix is not None:
            caption = (
                f"{p.description or p.name}. Cell (i, j): cosine of the two tasks' gradients; grey/n/a: not measured."
            )
            out.append(
                heatmap(
                    f"{run_key}-matrix-{_slug(p.name)}",
                    f"{p.name}: gradient alignment",
                    caption,
                    p.tasks,
                    [("all layers", p.matrix)],
                    colour_label="gradient cosine (−1 conflict … +1 aligned)",
                    diverging=True,
                    fixed=(-1.0, 1.0),
                )
            )
    return out


def tag_figure(record: RunRecord, run_key: str) -> Figure | str:
    p = record.predictor("tag")
    if p is None:
        return "no TAG predictor in this run"
    if p.matrix is None:
        return f"TAG has no matrix: {p.error or 'not computed'}"
    caption = (
        f"{p.description or 'TAG lookahead affinity'}. Not symmetric. Cell (row i, column j) = "
        "1 − L_i(after one SGD step on task j alone) / L_i: the relative decrease of the ROW task's loss caused by "
        "a step on the COLUMN task, averaged over training. Positive (blue): j's step lowers i's loss, j helps i; "
        "negative (red): j hurts i. The diagonal is a task's own step; the colour scale is set by the off-diagonal "
        "cells. Grey/n/a: not measured."
    )
    return heatmap(
        f"{run_key}-tag",
        "TAG: effect of the column task's step on the row task's loss",
        caption,
        p.tasks,
        [("TAG affinity P[i][j]", p.matrix)],
        colour_label="relative loss decrease of row task i\n(+ helps, − hurts)",
        diverging=True,
        xlabel="column j: task whose step is taken",
        ylabel="row i: task whose loss changes",
    )


# ---------------------------------------------------------------- e. predictor vs measured gap


def predictor_scatter(record: RunRecord, fig_id: str) -> Figure | str:
    gaps = record.pair_gaps
    if gaps is None:
        return "no pair-gap scatter: this run trained no task pairs (run with --pairs to measure them)"
    drawn = [p for p in record.predictors if p.matrix is not None]
    if not drawn:
        return "no predictor of this run has a matrix"
    where = {t: i for i, t in enumerate(gaps.tasks)}
    G = _values(gaps.mean)
    cols = min(4, len(drawn))
    rows = math.ceil(len(drawn) / cols)

    def points(p: PredictorRecord) -> tuple[list[float], list[float]]:
        assert p.matrix is not None
        xs, ys = [], []
        for i, a in enumerate(p.tasks):
            for j, b in enumerate(p.tasks):
                x = p.matrix[i][j]
                if i == j or x is None or a not in where or b not in where:
                    continue
                y = G[where[a], where[b]]
                if math.isfinite(y):
                    xs.append(x)
                    ys.append(float(y))
        return xs, ys

    def draw() -> MplFigure:
        fig = _new(cols * 2.7 + 0.6, rows * 2.5 + 1.0)
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        for k, ax in enumerate(axes.flat):
            if k >= len(drawn):
                ax.set_axis_off()
                continue
            p = drawn[k]
            xs, ys = points(p)
            ax.axhline(0, color="black", lw=0.8)
            ax.scatter(xs, ys, s=16, color="#4c72b0", edgecolor="white", linewidth=0.4)
            ax.set_title(f"{_t(p.name)}\n{_rho_title(p.pairs)}", fontsize=8)
            if not xs:
                ax.text(0.5, 0.5, "no pair with a value", transform=ax.transAxes, ha="center", color="grey")
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.grid(alpha=0.3)
        fig.supxlabel("predictor value P[i][j]  (its guess of task i's gain from sharing with task j)")
        fig.supylabel("measured pair gap of task i with j  (> 0: sharing helped)")
        return fig

    left_out = [f"{p.name} ({p.error or 'no matrix'})" for p in record.predictors if p.matrix is None]
    caption = (
        "Does the predictor know in advance? Each point is an ordered pair (i, j), i ≠ j: x = the predictor's value "
        "P[i][j] (its guess of how much task i gains from sharing with j), y = the measured gap of task i trained "
        "with j (mean over seeds; positive = sharing helped). A useful predictor puts its points on a rising band: "
        "ρ is the Spearman rank correlation of x and y (higher is better, 1 = same order), with its bootstrap "
        "95% interval and permutation p-value. Pairs with no value are left out."
        + (f" Not drawn (no matrix): {', '.join(left_out)}." if left_out else "")
    )
    return _build(fig_id, "Predictor value vs measured pair gap", caption, draw)


def _rho_title(score: ScoreRecord | None) -> str:
    if score is None:
        return "ρ n/a"
    ci = f" [{num(score.ci95.low, 2, True)}, {num(score.ci95.high, 2, True)}]" if score.ci95 else " [CI n/a]"
    p = f"p = {score.p_value:.2g}" if score.p_value is not None else "p n/a"
    return f"ρ = {score.value:+.2f}{ci}, {p}"


# ---------------------------------------------------------------- f. groupers


def grouper_figure(record: RunRecord, fig_id: str) -> Figure | str:
    known = [(g, g.regret) for g in record.groupers if g.regret is not None]
    if not known:
        return "no grouper with a measured regret in this run"

    def draw() -> MplFigure:
        fig = _new(6.5, 3.8)
        ax = fig.add_subplot()
        ax.scatter([g.cost_seconds for g, _ in known], [r for _, r in known], s=30, color="#55a868", zorder=3)
        for n, (g, regret) in enumerate(sorted(known, key=lambda k: (k[0].cost_seconds, k[1], k[0].grouper))):
            ax.annotate(
                _t(g.grouper),
                (g.cost_seconds, regret),
                xytext=(6, 4 + 9 * (n % 3)),
                textcoords="offset points",
                fontsize=7.5,
            )
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlim(left=-0.3)
        ax.set_xlabel("cost: seconds to compute what the grouper needs (symlog scale; ← cheaper)")
        ax.set_ylabel("regret (metric units; ↓ lower is better, 0 = best)")
        ax.grid(alpha=0.3)
        return fig

    missing = [g.grouper for g in record.groupers if g.regret is None]
    caption = (
        "Each grouper proposes a partition of the tasks into models. Regret = the mean gap of the best measured "
        "partition minus that of the grouper's partition: 0 means it found the best one, lower is better. Cost: "
        "the seconds spent on what it needs (its predictor; for pair_gaps the whole pairwise training sweep); the "
        "fixed baselines cost 0. Best is bottom left."
        + (f" Regret n/a (not drawn): {', '.join(missing)}." if missing else "")
    )
    return _build(fig_id, "Grouper regret vs cost", caption, draw)


def _slug(name: str) -> str:
    """``name`` when it is safe in an id and a file name; else its safe part and a hash (two names never meet)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:40]
    return f"{safe or 'x'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
