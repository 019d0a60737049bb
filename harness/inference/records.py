"""The records of a ``harness predict`` input file, read one at a time, and the ``rows`` reader.

Formats (``--input-format``, else from the file's extension):

* ``jsonl`` (``.jsonl``, ``.ndjson``): one JSON object per line; blank lines are skipped;
* ``tsv`` (``.tsv``): a header row naming the columns, then one row per record, tab-separated,
  quoting off (as GLUE's files);
* ``csv`` (``.csv``): a header row, then rows with standard CSV quoting (a quoted field may
  span lines).

Text is UTF-8 (a byte-order mark opening the file is dropped). Every problem is a
``DataError`` naming the file and line, never quoting the input's text (it may be protected
health information): a missing file, bytes that are not UTF-8, a JSONL line that is not a JSON
object, a JSON string with a lone surrogate escape (``"\\ud800"`` without its pair: not text), a
TSV/CSV row with more or fewer fields than the header, a CSV quote never closed, a file without
records.
The file is read lazily, line by line: memory does not grow with its length.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.api import Unit
from harness.errors import ConfigError, DataError

INPUT_FORMATS = ("jsonl", "tsv", "csv")
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".csv": "csv"}
Record = tuple[int, dict[str, Any]]  # (the line the record starts on, 1-based; its fields)


def input_format(path: Path, given: str | None) -> str:
    """``given`` when set, else the format of ``path``'s extension; ``ConfigError`` when neither says."""
    if given:
        if given not in INPUT_FORMATS:
            raise ConfigError(f"--input-format {given!r}: expected one of {', '.join(INPUT_FORMATS)}")
        return given
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"--input {path}: cannot tell its format from the extension {path.suffix or '(none)'!r}; "
            f"name it .jsonl, .tsv or .csv, or pass --input-format {'|'.join(INPUT_FORMATS)}"
        )
    return fmt


def check_input(path: Path) -> None:
    """``DataError`` when ``path`` is not a readable regular file (not stdin, a pipe or a device:
    the input is read once per model)."""
    if not path.exists():
        raise DataError(f"--input {path}: no such file")
    if path.is_dir():
        raise DataError(f"--input {path}: a folder; name a file")
    if not path.is_file():  # stdin, a pipe, a device: each model reads the input again from its start
        raise DataError(f"--input {path}: not a regular file (stdin and pipes cannot be read again); save it to a file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DataError(f"--input {path}: cannot read it ({exc.strerror or exc})") from None


def read_records(path: Path, fmt: str) -> Iterator[Record]:
    """Every record of the file, in order, as (line, fields); raises ``DataError`` at the first
    bad line and, after the last line, when the file held no record."""
    records = _jsonl(path) if fmt == "jsonl" else _delimited(path, fmt)
    count = 0
    for record in records:
        count += 1
        yield record
    if count == 0:
        what = "a header row and rows" if fmt != "jsonl" else "one JSON object per line"
        raise DataError(f"{path}: no inputs (the file holds no record); expected {what}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of every physical line, line end kept; each line decoded on its own, so a
    bad byte is reported with its line (UTF-8 never uses the newline byte inside a character)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}: line {number}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
                ) from None


def _jsonl(path: Path) -> Iterator[Record]:
    for number, text in _lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
            if not isinstance(value, dict):
                raise DataError(
                    f"{path}: line {number}: a JSON {type(value).__name__}, not an object; one object per line"
                )
            if "\\u" in text:  # only an escape can make a lone surrogate: the line itself was valid UTF-8
                _check_unicode(path, number, value)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "a .jsonl input holds one JSON object per line (use --input-format for TSV or CSV)"
            ) from None
        except RecursionError:
            raise DataError(f"{path}: line {number}: JSON nested too deeply; flatten the record") from None
        yield number, value


def _check_unicode(path: Path, number: int, record: dict[str, Any]) -> None:
    """``DataError`` naming the field (never its value) when a string of the record, at any depth,
    holds a lone surrogate (a ``\\ud800``-style escape without its pair): it is not text, and the
    tokenizer and the UTF-8 output would fail on it."""
    for name, value in record.items():
        what = f"field {name!r}" if _is_unicode(name) else "a field name"
        if what == "a field name" or not _is_unicode(value):
            raise DataError(
                f"{path}: line {number}: {what} is not valid Unicode (a lone surrogate escape); fix the input"
            )


def _is_unicode(value: Any) -> bool:
    """Whether every string in ``value`` (a JSON value: nested lists and objects too) encodes as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(_is_unicode(v) for v in value)
    if isinstance(value, dict):
        return all(_is_unicode(k) and _is_unicode(v) for k, v in value.items())
    return True


def _delimited(path: Path, fmt: str) -> Iterator[Record]:
    """TSV/CSV rows keyed by the header; a record that is only blanks is skipped."""
    starts: list[int] = []  # the physical lines the csv reader consumed for the current record

    def lines() -> Iterator[str]:
        for number, text in _lines(path):
            starts.append(number)
            yield text

    sep = "\t" if fmt == "tsv" else ","
    # strict: a quote never closed, or text after a closing quote, fails instead of swallowing records
    reader = csv.reader(
        lines(), delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL, strict=True
    )
    header: list[str] | None = None
    try:
        for row in reader:
            line = starts[0]
            starts.clear()
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = _header(path, row, fmt)
                continue
            if len(row) != len(header):
                hint = " (a tab inside a text? TSV is read with quoting off)" if fmt == "tsv" else ""
                fields = f"{len(row)} field{'' if len(row) == 1 else 's'}"
                raise DataError(
                    f"{path}: line {line}: {fields}, the header has {len(header)}{hint}; "
                    f"every row needs one field per column"
                )
            yield line, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        if str(exc) == "unexpected end of data" and starts:  # the file ended inside a quoted field
            raise DataError(
                f"{path}: line {starts[0]}: a quoted field opened in the record starting here is never closed "
                '(the file ends inside it); close the quote, and double a quote inside a field ("")'
            ) from None
        raise DataError(f"{path}: line {reader.line_num}: not valid {fmt.upper()} ({exc})") from None


def _header(path: Path, row: list[str], fmt: str) -> list[str]:
    names = [cell.strip() for cell in row]
    if len(set(names)) != len(names) or not all(names):
        raise DataError(f"{path}: line 1: the header must name every column once (a {fmt} input starts with one)")
    return names


def read_row(record: Mapping[str, Any], text_fields: tuple[str, ...]) -> list[Unit] | None:
    """The built-in ``rows`` reader: a record holding the task's text fields is one unit.

    None (not for this task) when a text field is absent; ``DataError`` when one is not a string.
    """
    if any(field not in record for field in text_fields):
        return None
    texts = []
    for field in text_fields:
        value = record[field]
        if not isinstance(value, str):
            raise DataError(f"field {field!r}: expected text (a string), got {_kind(value)}")
        texts.append(value)
    return [("", tuple(texts))]


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
