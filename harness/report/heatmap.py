"""Task x task matrices as coloured terminal heatmaps (rich tables; plain aligned numbers off a terminal).

Colour: a diverging scale around a centre that means something for the matrix (``Scale``):
red below the centre, blue above, white at it, full colour at the scale's ends. A NaN entry
is a dot (``UNDEFINED``); the diagonal (a task with itself, never scored) is dimmed, uncoloured.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich import box
from rich.color import Color
from rich.style import Style
from rich.table import Table
from rich.text import Text

from harness.report.format import UNDEFINED, number

_NEUTRAL = (247, 247, 247)
_LOW = (178, 24, 43)  # red: below the centre (should not share)
_HIGH = (33, 102, 172)  # blue: above the centre (should share)


@dataclass(frozen=True)
class Scale:
    """Diverging colour scale: ``low`` -> full red, ``centre`` -> white, ``high`` -> full blue."""

    low: float
    centre: float
    high: float
    centre_is: str = "0"  # what the centre means, for the title

    def intensity(self, value: float) -> float:
        """Signed position in [-1, 1]: -1 at ``low``, 0 at ``centre``, 1 at ``high`` (clipped)."""
        if value >= self.centre:
            span = self.high - self.centre
            return min(1.0, (value - self.centre) / span) if span > 0 else 0.0
        span = self.centre - self.low
        return max(-1.0, (value - self.centre) / span) if span > 0 else 0.0

    def style(self, value: float) -> Style:
        t = self.intensity(value)
        target = _HIGH if t > 0 else _LOW
        rgb = tuple(round(n + abs(t) * (c - n)) for n, c in zip(_NEUTRAL, target, strict=True))
        return Style(color="white" if abs(t) > 0.55 else "black", bgcolor=Color.from_rgb(*rgb))

    def describe(self, digits: int) -> str:
        ends = f"red {number(self.low, digits, self.low < 0)} .. blue {number(self.high, digits, self.low < 0)}"
        return f"colour {ends}, white at {self.centre_is}"


def similarity_scale(values: Sequence[float], floor: float | None = None) -> Scale:
    """The scale for a predictor's (finite, off-diagonal) values.

    - values in [0, 1] (CKA, NMI, ratios): the fixed range [0, 1], centred at ``floor`` (what
      unrelated representations score, for CKA) when given, else at 0.5;
    - signed values (cosines, TAG, random): centred at 0, symmetric, full colour at the largest
      absolute value (cosines are rarely near +-1; a fixed range would wash them out).
    """
    if values and min(values) >= 0.0 and max(values) <= 1.0:
        if floor is not None and math.isfinite(floor) and 0.0 < floor < 1.0:
            return Scale(0.0, floor, 1.0, f"the floor {floor:.2f}")
        return Scale(0.0, 0.5, 1.0, "0.5")
    return signed_scale(values)


def signed_scale(values: Sequence[float]) -> Scale:
    """Centred at 0, full colour at +-max |value| (1 when there is no nonzero value)."""
    extent = max((abs(v) for v in values), default=0.0) or 1.0
    return Scale(-extent, 0.0, extent, "0")


def digits_for(values: Sequence[float]) -> int:
    """Two decimals, three when every value is below 0.1 in size (gaps often are)."""
    return 3 if values and max(abs(v) for v in values) < 0.1 else 2


def heatmap(
    matrix: Any,
    tasks: Sequence[str],
    labels: Mapping[str, str],
    scale: Scale,
    *,
    digits: int = 2,
    marked: Collection[tuple[int, int]] = (),
    mark: str = "*",
    title: str = "",
) -> Table:
    """A [T, T] matrix as a table: row i = ``tasks[i]``, column j = ``tasks[j]``, cells coloured by ``scale``.

    ``labels`` shortens task names (``harness.report.format.short_names``); entries in
    ``marked`` get ``mark`` appended; NaN/None is ``UNDEFINED``. A ``title`` should be short:
    on a terminal it wraps at the table's width (print a long explanation as a line before).
    """
    m = np.array(matrix, dtype=np.float64)  # None -> NaN
    assert m.shape == (len(tasks), len(tasks)), (m.shape, len(tasks))
    signed = scale.low < 0
    names = [labels.get(task, task) for task in tasks]
    texts = [
        [
            UNDEFINED if not math.isfinite(v) else number(v, digits, signed) + (mark if (i, j) in marked else "")
            for j, v in enumerate(row)
        ]
        for i, row in enumerate(m.tolist())
    ]
    # cells padded to the column width (and a space each side), so the colour fills the whole cell
    widths = [max(len(names[j]), *(len(row[j]) for row in texts)) for j in range(len(tasks))]
    table = Table(
        title=Text(title) if title else None, title_justify="left", box=box.SIMPLE_HEAD, padding=0, show_edge=False
    )
    table.add_column(" i \\ j ")
    for name, width in zip(names, widths, strict=True):
        table.add_column(Text(f" {name.rjust(width)} "), justify="right")
    for i, name in enumerate(names):
        cells = []
        for j, text in enumerate(texts[i]):
            value = float(m[i, j])
            style = scale.style(value) if i != j and math.isfinite(value) else Style(dim=True)
            cells.append(Text(f" {text.rjust(widths[j])} ", style=style))
        table.add_row(Text(f" {name} "), *cells)
    return table
