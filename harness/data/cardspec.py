"""The data model of a validated task card: what ``harness.data.cards`` reads and ``harness.data.cardload`` loads.

Kept apart so that the loader and the validator both import it and not each other.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from harness.api import ProblemType

LABEL = "label"  # the Dataset's label column
DIALECTS = {"tsv": ("\t", csv.QUOTE_NONE), "csv": (",", csv.QUOTE_MINIMAL)}  # (separator, quoting)

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SplitFile:
    path: str
    header: bool
    columns: tuple[str, ...]  # with header = false


@dataclass(frozen=True)
class HubSource:
    path: str
    name: str | None
    splits: Pairs  # harness split -> hub split
    label_field: str
    rename: Pairs


@dataclass(frozen=True)
class Card:
    """What a card's loader needs; hashable, so loaded splits can be cached per card."""

    file: Path
    task: str
    problem_type: ProblemType
    labels: tuple[str, ...]
    text_fields: tuple[str, ...]
    format: str
    root_env: str | None
    label_field: str
    label_map: Pairs
    label_separator: str
    missing_label: str | None
    rename: Pairs  # file column -> Dataset column
    splits: tuple[tuple[str, SplitFile], ...]
    hub: HubSource | None


def display_path(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
