"""The task x task section of the report: the measured pair gaps and each predictor's matrix as heatmaps.

``matrix_section`` returns what to print, in order: tables (heatmaps) and lines of text. The
pair-gap heatmap (the outcome) comes first, so each predictor's heatmap can be read against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from rich.table import Table

from harness.errors import AnalysisError
from harness.protocol.results import PredictorMatrix, RunResults, none_to_nan
from harness.report.format import UNDEFINED, finite_offdiagonal, legend, number, short_names
from harness.report.heatmap import digits_for, heatmap, signed_scale, similarity_scale

Item = Table | str


def task_labels(results: RunResults) -> dict[str, str]:
    """Short labels for every task named in the run (plan order first), shared by all heatmaps."""
    names = list(results.plan.get("tasks", []))
    names += (results.pair_gaps or {}).get("tasks", [])
    for data in results.predictors.values():
        names += data.get("tasks", []) + data.get("details", {}).get("per_layer_tasks", [])
    return short_names(names)


def pair_gap_heatmap(results: RunResults, labels: Mapping[str, str]) -> list[Item]:
    """Seed-mean gap of row task i trained with column task j: a title line and the heatmap ([] without ``--pairs``).

    An entry is the mean over seeds when measured on every seed, else undefined; ``*`` marks
    a gap whose 95 % t interval over seeds lies below 0 (``harness.scoring.significant_negative``).
    """
    if not results.pair_gaps:
        return []
    from harness.scoring import significant_negative

    G = none_to_nan(results.pair_gaps["values"])  # [S, T, T]
    mean = G.mean(axis=0)  # NaN where a seed is missing
    marked: set[tuple[int, int]] = set()
    if G.shape[0] >= 2:
        try:
            marked = {(int(i), int(j)) for i, j in np.argwhere(significant_negative(G))}
        except AnalysisError:
            pass  # pairs measured on some seeds only: no test, the heatmap still shows the means
    values = finite_offdiagonal(mean)
    scale, digits = signed_scale(values), digits_for(values)
    seeds = G.shape[0]
    title = (
        f"pair gaps (the measured outcome): row i, column j = gap of i when trained with j, mean over {seeds} "
        f"seed{'s' if seeds != 1 else ''}; * = 95% interval below 0 (negative transfer); {UNDEFINED} = not "
        f"measured [{scale.describe(digits)}]"
    )
    return [title, heatmap(mean, results.pair_gaps["tasks"], labels, scale, digits=digits, marked=marked)]


def predictor_heatmap(p: PredictorMatrix, labels: Mapping[str, str]) -> list[Item]:
    """One available predictor's matrix, on the scale its values call for: a title line and the heatmap."""
    assert p.matrix is not None
    values = finite_offdiagonal(p.matrix)
    scale, digits = similarity_scale(values, _floor(p)), digits_for(values)
    shape = "symmetric" if p.symmetric else "asymmetric: row i = the task that benefits"
    title = f"{p.name}: {p.description or 'predictor'} [{shape}; {scale.describe(digits)}; diagonal not scored]"
    return [title, heatmap(p.matrix, p.tasks, labels, scale, digits=digits)]


def _floor(p: PredictorMatrix) -> float | None:
    floor = p.details.get("floor")
    return float(floor) if isinstance(floor, (int, float)) else None


def detail_lines(p: PredictorMatrix, labels: Mapping[str, str]) -> list[str]:
    """What a predictor's details add to its heatmap: CKA references, gradient input split, notes."""
    d = p.details
    lines = []

    def per_task(values: Mapping[str, Any]) -> str:
        return ", ".join(f"{labels.get(t, t)} {number(v, 2)}" for t, v in values.items())

    if any(key in d for key in ("ceiling", "floor", "vs_untrained")):
        parts = []
        if "ceiling" in d:
            parts.append(f"ceiling (two seeds of one task) {per_task(d['ceiling'])}")
        if "floor" in d:
            parts.append(f"floor (probe rows of one model shuffled) {number(d['floor'], 2)}")
        if "vs_untrained" in d:
            parts.append(f"vs the untrained encoder {per_task(d['vs_untrained'])}")
        lines.append(f"  {p.name}: " + "; ".join(parts))
    if "mean_shared_inputs" in d or "mean_disjoint_inputs" in d:
        lines.append(
            f"  {p.name}: mean over pairs on shared inputs {number(d.get('mean_shared_inputs'), 2, True)}, "
            f"on disjoint inputs {number(d.get('mean_disjoint_inputs'), 2, True)}"
        )
    lines += [f"  {p.name}: {key}: {value}" for key, value in d.items() if isinstance(value, str)]
    return lines


def layer_heatmaps(p: PredictorMatrix, labels: Mapping[str, str]) -> list[Item]:
    """A title line and one heatmap per layer of ``details.per_layer`` [L, T, T], all on one scale ([] when absent)."""
    if p.details.get("per_layer") is None:
        return []
    stack = none_to_nan(p.details["per_layer"])
    tasks = p.details.get("per_layer_tasks") or p.tasks
    layers = p.details.get("layers") or [f"layer {k}" for k in range(stack.shape[0])]
    values = finite_offdiagonal(stack)
    scale, digits = similarity_scale(values, _floor(p)), digits_for(values)
    items: list[Item] = [f"{p.name} per layer ({len(layers)} layers, one scale) [{scale.describe(digits)}]"]
    for k, layer in enumerate(layers):
        items.append(heatmap(stack[k], tasks, labels, scale, digits=digits, title=f"{p.name}, {layer}"))
    return items


def unavailable_lines(results: RunResults) -> list[str]:
    """One line per predictor without a matrix, with the reason."""
    missing = [p for p in results.predictor_matrices().values() if p.matrix is None]
    if not missing:
        return []
    return ["unavailable predictors (no matrix, not scored):"] + [f"  {p.name}: {p.error}" for p in missing]


def matrix_section(results: RunResults, layers: bool = False) -> list[Item]:
    """The legend of task labels, the pair-gap heatmap, every available predictor's heatmap and details
    (``layers``: its per-layer heatmaps too, each distinct stack once), then the unavailable ones."""
    labels = task_labels(results)
    items: list[Item] = []
    if (text := legend(labels)) is not None:
        items.append(f"tasks: {text}")
    items += pair_gap_heatmap(results, labels) or ["pair gaps: not measured (run with --pairs to train every pair)"]
    shown: dict[str, np.ndarray] = {}
    layered = False
    for p in results.predictor_matrices().values():
        if p.matrix is None:
            continue
        items += predictor_heatmap(p, labels)
        items += detail_lines(p, labels)
        layered = layered or p.details.get("per_layer") is not None
        if layers and p.details.get("per_layer") is not None:
            stack = none_to_nan(p.details["per_layer"])
            same = [n for n, s in shown.items() if s.shape == stack.shape and np.array_equal(s, stack, equal_nan=True)]
            if same:
                items.append(f"  {p.name}: per-layer matrices as for {same[0]}")
            else:
                shown[p.name] = stack
                items += layer_heatmaps(p, labels)
    if layered and not layers:
        items += ["", "per-layer matrices: add --layers"]
    return items + [""] + unavailable_lines(results)
