"""Declarative task cards: one TOML file per task, validated into a ``TaskSpec``.

A card names the task, its labels and metrics, and where its files live::

    name = "cola"                                   # task name (lower-case, digits, _ - .)
    description = "..."                             # optional, one line
    version = "1"                                   # optional: bump when the task's definition changes
    problem_type = "single_label_classification"    # | multi_label_classification | regression
    labels = ["unacceptable", "acceptable"]         # class names (omit for regression)
    text_fields = ["sentence"]                      # one or two Dataset columns holding text
    metrics = ["matthews_correlation", "accuracy"]  # primary first; names from the metric registry
    input_group = "..."                             # optional: tasks labelling the same inputs

    [data]
    format = "tsv"                      # tsv (quoting off) | csv | jsonl
    root_env = "HARNESS_GLUE_DIR"       # optional: env var naming the data root
    header = true                       # tsv/csv: the first row names the columns (default true)
    columns = ["source", "label", ...]  # tsv/csv with header = false: the column names
    label_field = "label"               # the file's label column (default "label")
    label_map = { "0" = "unacceptable" }  # optional: raw value -> label name
    label_separator = ","               # multi-label: raw value is a separated list of names (default ",")
    missing_label = ""                  # optional: raw value meaning "not annotated" (jsonl: also null)
    rename = { "#1 String" = "sentence1" }  # optional: file column -> Dataset column

    [data.splits]                       # train and dev are required, test is optional
    train = "CoLA/train.tsv"            # a path relative to the data root, or a table:
    test = { path = "CoLA/test.tsv", header = true, columns = [...] }  # per-split overrides

    [data.hub]                          # optional; used only with the data option source=hub
    path = "nyu-mll/glue"
    name = "cola"                       # optional configuration name
    splits = { train = "train", dev = "validation", test = "test" }
    label_field = "label"               # optional (default "label")
    rename = { premise = "sentence1" }  # optional: hub column -> Dataset column

Paths resolve against the data root: ``--data DIR`` (``LoadContext.data_dir``), else the
``root_env`` variable, else the card's own folder. A path that resolves outside its data root
(after ``..`` and symlinks; an absolute path elsewhere) is refused with a ``DataError`` naming the
card and key, unless the user passes ``--data-option allow_outside_root=true``: a card from
someone else cannot make a run read arbitrary files. The loader returns a ``datasets.Dataset``
with exactly the text fields and, when the file has the label column, ``label``: a class index
(single-label), a 0/1 list (multi-label) or a float (regression). Train and dev must be
labelled; a test file without the label column gives a Dataset without ``label``. Raw label
values are matched against ``labels`` as strings, after ``label_map``. A bad card raises
``TaskSpecError`` naming the file and key; a bad row raises ``DataError`` naming file, line and
field, never the row's text.

This module reads and validates cards; ``harness.data.cardload`` loads their data.
"""

from __future__ import annotations

import difflib
import functools
import tomllib
from pathlib import Path
from typing import Any

from harness.api import SPLITS, ProblemType, TaskSpec
from harness.data.cardload import load_split
from harness.data.cardspec import DIALECTS, LABEL, Card, HubSource, SplitFile
from harness.data.cardspec import display_path as _display
from harness.errors import TaskSpecError

__all__ = ["load_card", "load_cards"]

FORMATS = (*DIALECTS, "jsonl")

# key -> (kind, required), per table. Kinds are named in KINDS.
TOP = {
    "name": ("str", True),
    "description": ("str", False),
    "version": ("str", False),
    "problem_type": ("str", True),
    "labels": ("list", False),
    "text_fields": ("list", True),
    "metrics": ("list", True),
    "input_group": ("str", False),
    "data": ("table", True),
}
DATA = {
    "format": ("str", True),
    "root_env": ("str", False),
    "header": ("bool", False),
    "columns": ("list", False),
    "label_field": ("str", False),
    "label_map": ("map", False),
    "label_separator": ("str", False),
    "missing_label": ("str", False),
    "rename": ("map", False),
    "splits": ("table", True),
    "hub": ("table", False),
}
SPLIT = {"path": ("str", True), "header": ("bool", False), "columns": ("list", False)}
HUB = {
    "path": ("str", True),
    "name": ("str", False),
    "splits": ("map", True),
    "label_field": ("str", False),
    "rename": ("map", False),
}
KINDS = {"str": "a string", "bool": "a boolean", "list": "a list of strings", "map": "a table of strings"}

# --- reading and validating cards -------------------------------------------------------------


def load_cards(directory: Path) -> list[TaskSpec]:
    """Every ``*.toml`` card in ``directory``, sorted by file name; task names must be unique.

    Public (``from harness import load_cards``): a plugin that ships cards registers these specs
    from its ``register_tasks``. Raises ``TaskSpecError`` naming the card file and key.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        raise TaskSpecError(f"{_display(directory)}: no task cards (*.toml) found")
    specs: list[TaskSpec] = []
    seen: dict[str, str] = {}  # task name -> card file
    for file in files:
        spec = load_card(file)
        if spec.name in seen:
            raise TaskSpecError(f"task {spec.name!r} is declared twice: in {seen[spec.name]} and in {_display(file)}")
        seen[spec.name] = _display(file)
        specs.append(spec)
    return specs


def load_card(path: Path) -> TaskSpec:
    """Read and validate one card; raise ``TaskSpecError`` naming the file and the key."""
    path = Path(path)
    where = _display(path)
    raw = _read_toml(path, where)
    _check(raw, TOP, where, "")
    data = raw["data"]
    _check(data, DATA, where, "data.")
    card = _card(raw, path.resolve(), where)

    try:
        return TaskSpec(
            name=raw["name"],
            problem_type=card.problem_type,
            text_fields=card.text_fields,
            loader=functools.partial(load_split, card),
            metrics=tuple(raw["metrics"]),
            labels=card.labels,
            splits=tuple(s for s in SPLITS if s in dict(card.splits)),
            label_column=LABEL,
            input_group=raw.get("input_group"),
            description=raw.get("description", ""),
            version=raw.get("version", "1"),
        )
    except TaskSpecError as exc:
        raise TaskSpecError(f"{where}: {exc}") from None


def _read_toml(path: Path, where: str) -> dict[str, Any]:
    from harness.data.textfile import read_text

    text = read_text(path, TaskSpecError, where)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskSpecError(f"{where}: invalid TOML: {exc}") from None


def _check(table: dict[str, Any], schema: dict[str, tuple[str, bool]], where: str, prefix: str) -> None:
    """Unknown keys (with a did-you-mean), missing required keys and wrong types are errors."""
    for key in table:
        if key not in schema:
            raise TaskSpecError(f"{where}: {_unknown_key(prefix + key, [prefix + k for k in schema])}")
    for key, (kind, required) in schema.items():
        if key not in table:
            if required:
                raise TaskSpecError(f"{where}: required key '{prefix}{key}' is missing")
        elif not _is_kind(table[key], kind):
            raise TaskSpecError(
                f"{where}: '{prefix}{key}' must be {KINDS.get(kind, 'a table')}, got {_got(table[key])}"
            )


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return f"key {key!r} is unknown; {hint}"


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return isinstance(value, dict)


def _got(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "table"}
    if isinstance(value, list | dict):
        items = value if isinstance(value, list) else list(value.values())
        odd = next((v for v in items if not isinstance(v, str)), None)
        if odd is not None:
            return f"a {names[type(value)]} containing {names.get(type(odd), type(odd).__name__)}"
    return names.get(type(value), type(value).__name__)


def _card(raw: dict[str, Any], file: Path, where: str) -> Card:
    problem = ProblemType.parse(raw["problem_type"], where)
    data = raw["data"]
    labels = tuple(raw.get("labels", ()))
    if data["format"] not in FORMATS:
        raise TaskSpecError(f"{where}: 'data.format' must be one of {', '.join(FORMATS)}, got {data['format']!r}")
    fields = raw["text_fields"]
    if LABEL in fields or len(set(fields)) != len(fields):
        raise TaskSpecError(f"{where}: 'text_fields' must be distinct and must not include {LABEL!r}")
    _check_rename(data.get("rename", {}), "data.rename", where)
    _check_label_options(problem, labels, data, where)
    return Card(
        file=file,
        task=raw["name"],
        problem_type=problem,
        labels=labels,
        text_fields=tuple(raw["text_fields"]),
        format=data["format"],
        root_env=data.get("root_env"),
        label_field=data.get("label_field", LABEL),
        label_map=tuple(data.get("label_map", {}).items()),
        label_separator=data.get("label_separator", ","),
        missing_label=data.get("missing_label"),
        rename=tuple(data.get("rename", {}).items()),
        splits=_splits(data, where),
        hub=_hub(data["hub"], where) if "hub" in data else None,
    )


def _check_rename(rename: dict[str, str], key: str, where: str) -> None:
    targets = list(rename.values())
    if LABEL in targets or len(set(targets)) != len(targets):
        raise TaskSpecError(f"{where}: '{key}' must give distinct new names other than {LABEL!r}")


def _check_label_options(problem: ProblemType, labels: tuple[str, ...], data: dict[str, Any], where: str) -> None:
    if "label_separator" in data and problem is not ProblemType.MULTI_LABEL:
        raise TaskSpecError(f"{where}: 'data.label_separator' is only for multi_label_classification")
    if "label_map" in data and problem is ProblemType.REGRESSION:
        raise TaskSpecError(f"{where}: 'data.label_map' is not for regression tasks")
    for raw_value, name in data.get("label_map", {}).items():
        if name not in labels:
            raise TaskSpecError(f"{where}: 'data.label_map' maps {raw_value!r} to {name!r}, which is not in 'labels'")


def _splits(data: dict[str, Any], where: str) -> tuple[tuple[str, SplitFile], ...]:
    tabular = data["format"] in DIALECTS
    if not tabular and ("header" in data or "columns" in data):
        raise TaskSpecError(f"{where}: 'data.header' and 'data.columns' are only for tsv and csv files")
    if data.get("header", True) and "columns" in data:
        raise TaskSpecError(f"{where}: 'data.columns' is only for files without a header; set 'data.header = false'")
    out = []
    for split, value in data["splits"].items():
        key = f"data.splits.{split}"
        if split not in SPLITS:
            raise TaskSpecError(f"{where}: {_unknown_key(key, [f'data.splits.{s}' for s in SPLITS])}")
        if not isinstance(value, str | dict):
            raise TaskSpecError(f"{where}: '{key}' must be a path or a table, got {_got(value)}")
        table = {"path": value} if isinstance(value, str) else value
        _check(table, SPLIT, where, key + ".")
        out.append((split, _split_file(table, data, tabular, key, where)))
    return tuple(sorted(out, key=lambda item: SPLITS.index(item[0])))


def _split_file(table: dict[str, Any], data: dict[str, Any], tabular: bool, key: str, where: str) -> SplitFile:
    if not tabular and ("header" in table or "columns" in table):
        raise TaskSpecError(f"{where}: '{key}.header' and '{key}.columns' are only for tsv and csv files")
    header = table.get("header", data.get("header", True))
    if header and "columns" in table:
        raise TaskSpecError(f"{where}: '{key}.columns' is only for files without a header; set '{key}.header = false'")
    columns = () if header else tuple(table.get("columns", data.get("columns", ())))
    if tabular and not header and not columns:
        raise TaskSpecError(f"{where}: '{key}' has no header row; list its column names in 'columns'")
    return SplitFile(table["path"], bool(header and tabular), columns)


def _hub(table: dict[str, Any], where: str) -> HubSource:
    _check(table, HUB, where, "data.hub.")
    for split in table["splits"]:
        if split not in SPLITS:
            known = [f"data.hub.splits.{s}" for s in SPLITS]
            raise TaskSpecError(f"{where}: {_unknown_key(f'data.hub.splits.{split}', known)}")
    _check_rename(table.get("rename", {}), "data.hub.rename", where)
    return HubSource(
        path=table["path"],
        name=table.get("name"),
        splits=tuple(table["splits"].items()),
        label_field=table.get("label_field", LABEL),
        rename=tuple(table.get("rename", {}).items()),
    )
