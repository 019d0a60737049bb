"""Annotated reports in JSON Lines: the user-data format, read strictly and written back.

One report per line::

    {"report_id": "r1", "region": "cervical", "text": "...the whole report...",
     "labels": {"C5-C6": {"canal_stenosis": "moderate", "disc": "protrusion"}, "C6-C7": {...}},
     "split": "train"}

* ``report_id``: non-empty string, unique in the file, no line breaks, at most 200 characters.
* ``region``: "cervical" or "lumbar".
* ``text``: the full report as a non-empty string (sections, findings, impression).
* ``labels``: level -> pathology -> label. Levels may be spelled any way the segmenter
  understands ("C5-6", "C5/C6"); they must belong to the region. Pathologies and labels are
  those of ``schema.PATHOLOGIES`` for the region. A pathology left out (or ``null``) at a
  level is unannotated there (masked with MISSING_LABEL); a level left out follows ``unlisted``.
* ``split`` (optional): "train", "dev" or "test"; give it on every line or on none (then the
  loader assigns a seeded split by report).
* ``unlisted`` (optional): what a level left out of ``labels`` means: "unannotated" (no row)
  or "normal" (every pathology normal/none/absent there, a row when the segmenter finds text
  for the level). Without it, ``--data-option unlisted=...`` decides (default "unannotated").
* ``meta`` (optional): any JSON object, ignored (your own bookkeeping).

The file is UTF-8 with LF or CRLF line ends; a byte-order mark at its start is accepted and
dropped ("utf-8-sig", as for task cards), one at the start of a later line is an error. Blank
lines are allowed. Any other problem is a ``DataError`` naming the file, the line and the
field. Errors and logs name report ids, never report text.
"""

from __future__ import annotations

import codecs
import difflib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.api import SPLITS
from harness.errors import DataError
from harness_spine.levels import REGION_LEVELS, REGIONS, normalize_level
from harness_spine.reports import UNLISTED, Report
from harness_spine.schema import SEVERITY, region_pathologies

REPORTS_FILE = "reports.jsonl"
FIELDS = ("report_id", "region", "text", "labels", "split", "unlisted", "meta")
REQUIRED = ("report_id", "region", "text", "labels")
MAX_ID = 200


def resolve(data: Path) -> Path:
    """The JSONL file for ``--data``: the file itself, or ``reports.jsonl`` (or
    ``spine/reports.jsonl``) in a folder."""
    if data.is_file():
        return data
    if data.is_dir():
        for candidate in (data / REPORTS_FILE, data / "spine" / REPORTS_FILE):
            if candidate.is_file():
                return candidate
        raise DataError(
            f"{data}: no {REPORTS_FILE} in this folder (nor in {data / 'spine'}); see the spine plugin README"
        )
    raise DataError(f"{data}: no such file or folder")


_WORD = re.compile(r"[\w.+/\-\u2010-\u2015\u2212]{1,40}")  # a label, level, pathology or id: one word


def _show(value: Any) -> str:
    """A user value for an error message: one short word (a label, a level, an id) quoted; any other
    string by its length only (a misplaced field could hold report text), anything else by type."""
    if isinstance(value, str):
        return repr(value) if _WORD.fullmatch(value) else f"(a string of {len(value)} characters)"
    return f"a {_type(value)}"


def _key(name: str) -> str:
    """An object key as a field name in a message: as given when it is one short word, else its length."""
    return name if _WORD.fullmatch(name) else f"<a key of {len(name)} characters>"


def _type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _suggest(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Line:
    """Error helper for one line of one file."""

    def __init__(self, path: Path, number: int):
        self.where = f"{path}:{number}"

    def error(self, field: str | None, problem: str) -> DataError:
        return DataError(f"{self.where}: field {field}: {problem}" if field else f"{self.where}: {problem}")


def read_reports(path: Path) -> list[Report]:
    """Every report in a JSONL file, validated (see the module docstring)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)  # "utf-8-sig": a byte-order mark opening the file is dropped
    reports: list[Report] = []
    seen: dict[str, int] = {}
    split_lines: dict[bool, int] = {}
    for number, chunk in enumerate(raw.split(b"\n"), 1):
        line = _Line(path, number)
        text = _decode(line, chunk)
        if not text.strip():
            continue
        report = _parse(line, text)
        if report.report_id in seen:
            raise line.error(
                "report_id", f"duplicate id {_show(report.report_id)} (first on line {seen[report.report_id]})"
            )
        seen[report.report_id] = number
        split_lines.setdefault(report.split is not None, number)
        if len(split_lines) == 2:
            first = split_lines[True]
            raise line.error(
                "split",
                f"line {first} gives a split but line {split_lines[False]} does not; give one on every line or on none",
            )
        reports.append(report)
    if not reports:
        raise DataError(f"{path}: no reports (the file is empty)")
    return reports


def _decode(line: _Line, chunk: bytes) -> str:
    """One line as text: UTF-8, CRLF or LF line ends; a byte-order mark only opening the file."""
    if chunk.startswith(codecs.BOM_UTF8):
        raise line.error(
            None,
            "a byte-order mark (U+FEFF) starts this line, which is not the first: were files concatenated? "
            "remove the mark (only the start of the file may have one)",
        )
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise line.error(
            None, f"not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8 (a BOM is allowed)"
        ) from None


def _parse(line: _Line, text: str) -> Report:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise line.error(None, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise line.error(None, f"expected one JSON object per line, got a {_type(obj)}")
    for key in obj:
        if key not in FIELDS:
            raise line.error(_key(key), f"unknown field{_suggest(key, FIELDS)} (known: {', '.join(FIELDS)})")
    for key in REQUIRED:
        if key not in obj:
            raise line.error(key, "missing")
    report_id = obj["report_id"]
    if not isinstance(report_id, str) or not report_id.strip() or len(report_id) > MAX_ID or "\n" in report_id:
        raise line.error("report_id", f"expected a non-empty string without line breaks of at most {MAX_ID} characters")
    region = obj["region"]
    if region not in REGIONS:
        # never the value: a misplaced field could hold report text (as harness predict says it)
        what = f"{len(region)} characters" if isinstance(region, str) else f"a {_type(region)}, not a string"
        raise line.error("region", f"unknown region ({what}); expected one of {', '.join(REGIONS)}")
    if not isinstance(obj["text"], str):
        raise line.error("text", f"expected a string, got a {_type(obj['text'])}")
    if not obj["text"].strip():
        raise line.error("text", "empty")
    split = obj.get("split")
    if split is not None and split not in SPLITS:
        raise line.error("split", f"unknown split {_show(split)}; expected one of {', '.join(SPLITS)}")
    if "meta" in obj and not isinstance(obj["meta"], dict):
        raise line.error("meta", f"expected an object, got a {_type(obj['meta'])}")
    unlisted = obj.get("unlisted")
    if unlisted is not None and unlisted not in UNLISTED:
        hint = _suggest(unlisted.lower(), UNLISTED) if isinstance(unlisted, str) else ""
        raise line.error("unlisted", f"unknown value {_show(unlisted)}; expected one of {', '.join(UNLISTED)}{hint}")
    labels = _labels(line, region, obj["labels"])
    return Report(report_id=report_id, region=region, text=obj["text"], labels=labels, split=split, unlisted=unlisted)


def _labels(line: _Line, region: str, value: Any) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise line.error("labels", f"expected an object of level -> pathology -> label, got a {_type(value)}")
    levels = REGION_LEVELS[region]
    known = {p.name: p for p in region_pathologies(region)}
    out: dict[str, dict[str, str]] = {}
    for key, per_level in value.items():
        field = f"labels.{_key(key)}"
        level = normalize_level(key)
        if level is None or level not in levels:
            what = f"level {_show(key)} is not a {region} level" if level else f"unknown level {_show(key)}"
            raise line.error(field, f"{what}; expected one of {', '.join(levels)}")
        if level in out:
            raise line.error(field, f"level {level} is given twice")
        if not isinstance(per_level, dict):
            raise line.error(field, f"expected an object of pathology -> label, got a {_type(per_level)}")
        out[level] = {}
        for name, label in per_level.items():
            sub = f"{field}.{_key(name)}"
            if name not in known:
                other = (
                    f"pathology {_show(name)} is not annotated in {region} reports"
                    if name in _ALL
                    else f"unknown pathology {_show(name)}"
                )
                raise line.error(sub, f"{other}; expected one of {', '.join(known)}{_suggest(name, known)}")
            if label is None:
                continue
            allowed = known[name].labels
            if not isinstance(label, str):
                raise line.error(sub, f"expected a string or null, got a {_type(label)}")
            if label not in allowed:
                kind = "severity" if allowed == SEVERITY else "label"
                raise line.error(
                    sub,
                    f"unknown {kind} {_show(label)}; expected one of {', '.join(allowed)}{_suggest(label, allowed)}",
                )
            out[level][name] = label
    return {lv: out[lv] for lv in levels if lv in out}


_ALL = {p.name for r in REGIONS for p in region_pathologies(r)}


def report_record(report: Report) -> dict[str, Any]:
    """The JSON object of one report, levels and pathologies in canonical order."""
    record: dict[str, Any] = {"report_id": report.report_id, "region": report.region, "text": report.text}
    order = [p.name for p in region_pathologies(report.region)]
    record["labels"] = {
        lv: {name: labels[name] for name in order if name in labels}
        for lv, labels in ((lv, report.labels[lv]) for lv in REGION_LEVELS[report.region] if lv in report.labels)
    }
    if report.split is not None:
        record["split"] = report.split
    if report.unlisted is not None:
        record["unlisted"] = report.unlisted
    return record


def write_reports(path: Path, reports: Iterable[Report]) -> int:
    """Write reports as JSONL (atomically: a temporary file renamed into place); returns the count."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for report in reports:
            f.write(json.dumps(report_record(report), ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count
