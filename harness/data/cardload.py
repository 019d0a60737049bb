"""Loading a validated card's data: files (tsv, csv, jsonl) through ``datasets``, or the hub.

``load_split`` is the ``TaskSpec`` loader of every card (``harness.data.cards`` binds it to the card).
It returns a ``datasets.Dataset`` with exactly the card's text fields and, when the source has
the label column, ``label``; loaded splits are cached per card, split and file version. A bad
row raises ``DataError`` naming file, line and field, never the row's text. The card format and
the data-root order are described in ``harness.data.cards``.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import itertools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.api import MISSING_LABEL, LoadContext, ProblemType
from harness.data.cardspec import DIALECTS, LABEL, Card, Pairs, SplitFile
from harness.data.cardspec import display_path as _display
from harness.data.textfile import open_text, read_text
from harness.errors import DataError

if TYPE_CHECKING:
    import datasets

__all__ = ["load_split"]


@dataclass(frozen=True)
class Origin:
    """Where a table came from, for column lookups and error messages."""

    where: str  # the file or hub dataset, as messages name it
    rename: Pairs  # source column -> Dataset column
    label_field: str
    locate: Callable[[int], str]  # row index -> "file: line N" or "hub ...: row N"
    hub: bool = False
    header: bool = False  # a tsv/csv file whose first row names the columns


# --- loading data ------------------------------------------------------------------------------


def load_split(card: Card, split: str, ctx: LoadContext) -> datasets.Dataset:
    """The TaskSpec loader of a card: the split from files (default) or, if asked, from the hub."""
    files = dict(card.splits)
    if split not in files:
        raise DataError(f"task {card.task!r} has no split {split!r} (it has: {', '.join(files)})")
    source = ctx.options.get("source", "files")
    if source == "hub":
        return _load_hub(card, split)
    if source != "files":
        raise DataError(f"task {card.task!r}: unknown data source {source!r}; use 'files' or 'hub'")
    file = _resolve(card, split, files[split], ctx)
    return _load_file(card, split, file, file.stat().st_mtime_ns)


def _resolve(card: Card, split: str, spec: SplitFile, ctx: LoadContext) -> Path:
    env = os.environ.get(card.root_env) if card.root_env else None
    if ctx.data_dir is not None:
        root, origin = Path(ctx.data_dir), "--data"
        if root.is_file():
            raise DataError(f"task {card.task!r} reads its files from a folder; --data {root} is a file")
    elif env:
        root, origin = Path(env), f"{card.root_env}"
    else:
        root, origin = card.file.parent, "the card's folder"
    file = root / spec.path
    _check_inside(card, split, spec, file, root, origin, ctx)
    if file.is_file():
        return file
    how = "--data DIR" + (f" or {card.root_env}" if card.root_env else "")
    raise DataError(
        f"data for task {card.task!r} not found: split {split!r} expects {file} (data root from {origin}); "
        f"point {how} at a folder holding {spec.path}"
    )


#: The ``--data-option`` that lets a card read files outside its data root (``..``, absolute paths, symlinks).
OUTSIDE_ROOT_OPTION = "allow_outside_root"


def _check_inside(
    card: Card, split: str, spec: SplitFile, file: Path, root: Path, origin: str, ctx: LoadContext
) -> None:
    """``DataError`` when ``file`` (after ``..`` and symlinks) lies outside ``root``, unless the user opted in."""
    allowed = ctx.options.get(OUTSIDE_ROOT_OPTION, "false").lower()
    if allowed in ("1", "true", "yes"):
        return
    if allowed not in ("0", "false", "no"):
        raise DataError(f"--data-option {OUTSIDE_ROOT_OPTION}={allowed}: expected true or false")
    real, top = file.resolve(), root.resolve()
    if real == top or top in real.parents:
        return
    raise DataError(
        f"{_display(card.file)}: 'data.splits.{split}' ({spec.path}) resolves to {real}, outside the data root "
        f"{top} (from {origin}); move the file under the root, or pass --data-option {OUTSIDE_ROOT_OPTION}=true"
    )


#: The longest text field a card's data may hold (characters): longer is a broken file (a lost line
#: break or quote merged rows), not one example; the model reads only its first ``max_length`` tokens.
MAX_FIELD_CHARS = 1_000_000


@functools.cache
def _load_file(card: Card, split: str, file: Path, mtime_ns: int) -> datasets.Dataset:
    spec = dict(card.splits)[split]
    table = _read(card, spec, file)

    def locate(index: int) -> str:
        return f"{_display(file)}: line {_line_number(file, card.format, spec.header, index)}"

    origin = Origin(_display(file), card.rename, card.label_field, locate, header=spec.header)
    return _shape(card, table, split, origin)


def _read(card: Card, spec: SplitFile, file: Path) -> datasets.Dataset:
    """The file as an in-memory Dataset.

    The user's rows may be protected health information: ``datasets`` would keep an Arrow copy of
    them in ``HF_DATASETS_CACHE`` for good, so it builds that copy in a temporary folder, which is
    removed once the table is in memory (its fingerprint does not depend on the folder, so the
    tokenization cache is reused across runs all the same).
    """
    import datasets

    read_text(file, DataError, _display(file))  # the one text rule: UTF-8, a byte-order mark allowed
    private = {"cache_dir": None, "keep_in_memory": True, "split": "train"}
    try:
        with _quiet(), tempfile.TemporaryDirectory(prefix="harness-data-") as folder:
            private["cache_dir"] = folder
            if card.format == "jsonl":
                return datasets.load_dataset("json", data_files=str(file), **private)
            sep, quoting = DIALECTS[card.format]
            names = list(spec.columns) if not spec.header else _header(file, card.format)
            return datasets.load_dataset(
                "csv",
                data_files=str(file),
                sep=sep,
                quoting=quoting,
                header=0 if spec.header else None,
                column_names=None if spec.header else names,
                index_col=False,  # a row with more fields than names is an error, never an index
                na_filter=False,  # "NA", "null" and "" stay strings
                features=datasets.Features({n: datasets.Value("string") for n in names}),
                **private,
            )
    except (datasets.exceptions.DatasetGenerationError, ValueError) as exc:
        _check_records(file, card.format, spec)  # names the line, when one is to blame
        raise DataError(f"{_display(file)}: cannot be read as {card.format}: {_reason(exc)}") from None


def _records(file: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(first line, record) of every record the data reader sees, skipping lines it skips.

    tsv/csv records are ``csv`` rows in the reader's dialect (tsv: quoting off); a record whose
    text is only spaces and tabs other than the separator is skipped, as pandas skips it (a tsv
    line of tabs is a row of empty fields). jsonl records are lines; blank ones (spaces, tabs)
    are skipped, as the JSON reader skips them. Lines end in LF or CRLF.
    """
    with open_text(file) as f:
        if fmt == "jsonl":
            for number, text in enumerate(f, 1):
                if text.strip(" \t\r\n"):
                    yield number, text
            return
        # a field may be long (the over-long ones are reported by line); the csv module's default stops at 128 KiB
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        sep = DIALECTS[fmt][0]
        blank = "".join(c for c in " \t\r\n" if c != sep)
        consumed: list[str] = []  # the physical lines of the record being read

        def lines() -> Iterator[str]:
            for text in f:
                consumed.append(text)
                yield text

        line = 1
        reader = csv.reader(lines(), delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
        for row in reader:
            text, start = "".join(consumed), line
            line += len(consumed)
            consumed.clear()
            if text.strip(blank):
                yield start, row


def _check_records(file: Path, fmt: str, spec: SplitFile) -> None:
    """After the reader failed: ``DataError`` naming the line of the first record to blame, or the
    file without data rows. A row that is not a JSON object (jsonl), a row whose field count differs
    from the header's or the card's ``columns`` (tsv, csv), a quote never closed (csv), a field over
    ``MAX_FIELD_CHARS``. Returns when no record is to blame (the caller reports the reader's error)."""
    where = _display(file)
    width = None if fmt == "jsonl" else (len(spec.columns) if not spec.header else None)
    count = 0
    for line, record in _records(file, fmt):
        if fmt == "jsonl":
            fields = _json_record(record, where, line)
        else:
            if width is None:  # the header row
                width = len(record)
                continue
            if len(record) != width:
                if fmt == "csv" and record and record[-1].count("\n"):
                    raise DataError(f'{where}: line {line}: a quoted field is never closed; close its quote (")')
                raise DataError(
                    f"{where}: line {line}: {len(record)} fields, the header names {width}; "
                    "each row needs one field per column"
                    + (" (quoting is off in tsv: a tab inside a field splits it)" if fmt == "tsv" else "")
                )
            fields = record
        for name, value in fields.items() if isinstance(fields, dict) else enumerate(fields):
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                column = f"field {name!r}" if isinstance(name, str) else f"field {name + 1}"
                raise DataError(
                    f"{where}: line {line}: {column} is {len(value):,} characters, over the limit of "
                    f"{MAX_FIELD_CHARS:,}; a row is one example: look for a missing line break or quote"
                )
        count += 1
    if count == 0:
        what = "the file is empty" if width is None else "the file has a header but no data rows"
        raise DataError(f"{where}: {what}; add rows, or leave the split out of the card")


def _json_record(text: str, where: str, line: int) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:  # the message names a position, never the content
        raise DataError(
            f"{where}: line {line}: not valid JSON ({exc.msg} at column {exc.colno}); one object per line"
        ) from None
    if not isinstance(record, dict):
        kind = {list: "an array", str: "a string", type(None): "null"}.get(type(record), "a number")
        raise DataError(f"{where}: line {line}: {kind}, not a JSON object; write one object per line")
    return record


def _header(file: Path, fmt: str) -> list[str]:
    row = next((r for _, r in _records(file, fmt)), None)
    if row is None:
        raise DataError(f"{_display(file)}: the file is empty; expected a header row")
    if len(set(row)) != len(row):
        raise DataError(f"{_display(file)}: line 1: the header names a column twice")
    return row


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    return str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No datasets progress bars and no datasets log records while a card loads: the harness reports
    progress itself, and a file it cannot read is one ``DataError`` line, not also datasets' own
    error record (which names the absolute path and repeats the parser's message)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    level = datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL + 10)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if not was_disabled:
            datasets.enable_progress_bars()


def _line_number(file: Path, fmt: str, header: bool, index: int) -> int:
    """1-based line where data row ``index`` starts, counting the header and the lines the reader skips."""
    starts = (start for start, _ in _records(file, fmt))
    return next(itertools.islice(starts, index + int(header), None), 0)


def _shape(card: Card, table: datasets.Dataset, split: str, origin: Origin) -> datasets.Dataset:
    """Keep the text fields (renamed) and convert the label column into ``label``."""
    source = {new: old for old, new in origin.rename}
    columns = [source.get(f, f) for f in card.text_fields]
    for field, column in zip(card.text_fields, columns, strict=True):
        _check_text(table, field, column, origin)
    renames = {c: f for c, f in zip(columns, card.text_fields, strict=True) if c != f}
    out = table.select_columns(columns).rename_columns(renames)
    field = origin.label_field
    if field not in table.column_names:
        if split == "test":
            return out
        raise DataError(f"{origin.where}: label column {field!r} is missing; the {split!r} split must be labelled")
    values = table[field][:]  # decoded: a jsonl column of mixed types is stored as JSON text
    if origin.hub and split == "test" and values and all(v == -1 for v in values):
        return out  # hub GLUE test splits hide their labels as -1 everywhere
    labels, feature = _convert_labels(card, values, table.features[field], field, origin.locate)
    return out.add_column(LABEL, labels, feature=feature)


def _check_text(table: datasets.Dataset, field: str, column: str, origin: Origin) -> None:
    import datasets

    if column not in table.column_names:
        known = ", ".join(_column_name(name) for name in table.column_names)
        hint = "; if line 1 is not a header row, set 'data.header = false' and 'data.columns'" if origin.header else ""
        raise DataError(
            f"{origin.where}: column {column!r} for text field {field!r} is missing (columns: {known}){hint}"
        )
    feature = table.features[column]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        raise DataError(f"{origin.where}: field {column!r} must hold text, got {feature}")
    if table.data.column(column).null_count:
        first = table.data.column(column).to_pylist().index(None)
        raise DataError(f"{origin.locate(first)}: field {column!r} is missing")
    _check_length(table, column, origin)


def _check_length(table: datasets.Dataset, column: str, origin: Origin) -> None:
    """``DataError`` at the first value of ``column`` over ``MAX_FIELD_CHARS`` (its length, never its text)."""
    import pyarrow.compute as pc

    lengths = pc.utf8_length(table.data.column(column))
    if table.num_rows == 0 or pc.max(lengths).as_py() <= MAX_FIELD_CHARS:
        return
    first = pc.index(pc.greater(lengths, MAX_FIELD_CHARS), True).as_py()
    raise DataError(
        f"{origin.locate(first)}: field {column!r} is {lengths[first].as_py():,} characters, over the limit of "
        f"{MAX_FIELD_CHARS:,}; a row is one example: look for a missing line break or quote"
    )


def _column_name(name: str) -> str:
    """A column name for a message: a file without a header row gives its first row's fields as names,
    which may be report text, so a name longer than two words or 30 characters is told by its length."""
    return name if len(name) <= 30 and len(name.split()) <= 2 else f"<{len(name)} characters>"


def _convert_labels(
    card: Card, values: list[Any], feature: Any, field: str, locate: Callable[[int], str]
) -> tuple[list[Any], Any]:
    import datasets

    parse, missing, out_feature = _label_parser(card)
    if isinstance(feature, datasets.ClassLabel) and card.problem_type is ProblemType.SINGLE_LABEL:
        if feature.num_classes != len(card.labels):
            raise DataError(
                f"{locate(0)}: field {field!r} has {feature.num_classes} classes; the card lists {len(card.labels)}"
            )
        return [v if v >= 0 else MISSING_LABEL for v in values], out_feature
    out = []
    for index, value in enumerate(values):
        if value is None or (isinstance(value, str) and value.strip() == card.missing_label):
            if card.missing_label is None:
                raise DataError(f"{locate(index)}: field {field!r}: the label is missing (set 'data.missing_label')")
            out.append(missing)
            continue
        try:
            out.append(parse(value))
        except ValueError as exc:
            raise DataError(f"{locate(index)}: field {field!r}: {exc}") from None
    return out, out_feature


def _label_parser(card: Card) -> tuple[Callable[[Any], Any], Any, Any]:
    """(parse raw value, value for an unannotated row, Dataset feature) for the card's problem type."""
    import datasets

    if card.problem_type is ProblemType.REGRESSION:
        return _number, math.nan, datasets.Value("float32")
    index = {name: i for i, name in enumerate(card.labels)}
    mapping = dict(card.label_map)
    known = ", ".join(card.labels) + (" (or a label_map key)" if mapping else "")

    def lookup(raw: str) -> int:
        name = mapping.get(raw, raw)
        if name not in index:
            if raw == "":
                raise ValueError(
                    "the label is empty; fill it in, or set 'data.missing_label = \"\"' for unannotated rows"
                )
            raise ValueError(f"value is not one of the labels: {known}")
        return index[name]

    if card.problem_type is ProblemType.SINGLE_LABEL:
        return (lambda value: lookup(_text(value))), MISSING_LABEL, datasets.Value("int64")

    def multi(value: Any) -> list[int]:
        names = value if isinstance(value, list) else _text(value).split(card.label_separator)
        row = [0] * len(card.labels)
        for name in names:
            if not isinstance(name, str):
                raise ValueError("a list of labels must hold label names")
            if name.strip():
                row[lookup(name.strip())] = 1
        return row

    return multi, [MISSING_LABEL] * len(card.labels), datasets.List(datasets.Value("int64"))


def _text(value: Any) -> str:
    """A raw scalar label as the string it is matched against (JSON numbers and booleans too)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ValueError(f"expected one label value, got a {type(value).__name__}")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("value is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("value is not a number") from None
    if not math.isfinite(number):
        raise ValueError("value is not a finite number")
    return number


# --- the hub (only when asked) -----------------------------------------------------------------


@functools.cache
def _load_hub(card: Card, split: str) -> datasets.Dataset:
    import datasets

    hub = card.hub
    if hub is None:
        raise DataError(f"task {card.task!r} has no [data.hub] table in {card.file.name}; load it from files")
    hub_split = dict(hub.splits).get(split)
    if hub_split is None:
        raise DataError(f"task {card.task!r}: 'data.hub.splits' has no entry for split {split!r}")
    where = f"hub dataset {hub.path!r}" + (f" ({hub.name})" if hub.name else "") + f" split {hub_split!r}"
    try:
        with _quiet():
            table = datasets.load_dataset(hub.path, hub.name, split=hub_split)
    except Exception as exc:  # noqa: BLE001 -- offline, unknown repository, ...: one clear line either way
        raise DataError(f"{where}: cannot be loaded: {_reason(exc)}") from None
    origin = Origin(where, hub.rename, hub.label_field, lambda i: f"{where}: row {i}", hub=True)
    return _shape(card, table, split, origin)
