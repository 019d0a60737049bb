"""Cell formatting shared by the report's tables and heatmaps: numbers, intervals, short task names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MISSING = "-"  # a value that was not computed (a table cell)
UNDEFINED = "·"  # a NaN / null entry of a matrix (a heatmap cell)


def number(value: float | None, digits: int = 3, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (a sign when ``signed``); "-" for None or NaN."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def with_interval(value: float | None, ci: Sequence[float | None] | None, digits: int = 3) -> str:
    """ "+0.012 [-0.010, +0.034]"; the interval is left out when absent."""
    text = number(value, digits, signed=True)
    if ci is not None and value is not None and None not in ci:
        low, high = ci[0], ci[1]
        text += f" [{number(low, digits, signed=True)}, {number(high, digits, signed=True)}]"
    return text


def percent(share: float | None) -> str:
    """A share as a percentage with two significant digits: 0.00013 -> "0.013%", 0.5 -> "50%"."""
    if share is None or not math.isfinite(share):
        return MISSING
    value = 100.0 * share
    if value == 0:
        return "0%"
    decimals = max(0, 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}%"


def seconds(value: float | None) -> str:
    """Seconds: whole from 10 up, two significant digits below, "<0.01" for less (0 stays "0")."""
    if value is None:
        return MISSING
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2g}" if value >= 0.01 or value == 0 else "<0.01"


def joined(tasks: Sequence[str], all_tasks: Sequence[str] = ()) -> str:
    """A group's tasks as "a + b"; "all N tasks" when it is every task of the run (N > 2)."""
    if len(tasks) > 2 and set(tasks) == set(all_tasks):
        return f"all {len(tasks)} tasks"
    return " + ".join(tasks)


def short_names(names: Sequence[str], width: int = 10) -> dict[str, str]:
    """Short, distinct labels for heatmap rows and columns: {full name: label}.

    The dotted prefix all names share is dropped ("cervical.disc" -> "disc"); a name still
    longer than ``width`` has its leading dotted parts cut to their initial ("cervical.disc"
    next to "lumbar.disc" -> "c.disc", "l.disc"), then the leading words of its last part
    ("canal_stenosis" -> "c_stenosis"), and is then cut to ``width``; labels that collide
    after cutting end in a digit. Every label is distinct (a legend maps them back).
    """
    unique = list(dict.fromkeys(names))
    parts = [name.split(".") for name in unique]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    labels = [_shorten(p[common:], width) for p in parts]
    clashing = {label for label in labels if labels.count(label) > 1}
    taken = set(labels) - clashing
    distinct = []
    for label in labels:
        n = 1
        while label in clashing and (candidate := f"{label[: width - len(str(n))]}{n}") in taken:
            n += 1
        if label in clashing:
            label = candidate
            taken.add(label)
        distinct.append(label)
    return dict(zip(unique, distinct, strict=True))


def _shorten(parts: list[str], width: int) -> str:
    """Leading dotted parts, then leading underscore words of the last part, cut to initials."""
    if len(".".join(parts)) > width:
        parts = [p[:1] for p in parts[:-1]] + [parts[-1]]
    words = parts[-1].split("_")
    if len(".".join(parts)) > width and len(words) > 1:
        parts[-1] = "_".join([w[:1] for w in words[:-1]] + [words[-1]])
    return ".".join(parts)[:width]


def legend(labels: dict[str, str]) -> str | None:
    """ "disc = cervical.disc, ..." for the labels that differ from their names; None when none does."""
    changed = [f"{short} = {name}" for name, short in labels.items() if short != name]
    return ", ".join(changed) if changed else None


def finite_offdiagonal(matrix: Any) -> list[float]:
    """The finite off-diagonal entries of a [T, T] matrix or a stack [..., T, T] (nested lists or arrays)."""
    import numpy as np

    m = np.array(matrix, dtype=np.float64)  # None -> NaN
    values = m[..., ~np.eye(m.shape[-1], dtype=bool)]
    return [float(v) for v in values[np.isfinite(values)]]
