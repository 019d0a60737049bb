"""Predictions written as JSONL or CSV, all or nothing.

One row per (input record, unit, model, task). Columns, in this order:

* ``line``: the input line the record starts on (1-based); ``id``: the record's id field
  (``id``; spine: ``report_id``), empty when it has none;
* the unit columns of the models' input readers (spine: ``level``), empty for a reader without;
* ``job``: the job whose model predicted; ``task``;
* ``label``: the class name (single-label); the predicted names (multi-label: a JSON list in
  JSONL, names joined by ``;`` in CSV); empty for regression;
* ``score``: the label's probability (single-label), the predicted value (regression); empty
  for multi-label;
* ``probabilities``: label name -> probability (softmax; sigmoid for multi-label); a JSON object
  (in CSV, the object's JSON text); empty for regression;
* with ``--echo-text`` only, one column per text field holding the unit's text (the spine
  snippet of the level, not the whole report).

Rows go to a temporary file beside the output (or in the temp folder for stdout) that replaces
the output only when every row is written: an error leaves no output and no partial file.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.errors import ConfigError
from harness.inference.engine import Prediction

OUTPUT_FORMATS = ("jsonl", "csv")


def output_format(path: Path | None, given: str | None) -> str:
    """``given``, else ``csv`` for a ``.csv`` output, else ``jsonl``."""
    if given:
        return given
    return "csv" if path is not None and path.suffix.lower() == ".csv" else "jsonl"


def check_output(path: Path | None, force: bool) -> None:
    """``ConfigError`` for an output that exists (without ``force``), is a folder, or has no folder."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--output {path} is a folder; name a file")
    if path.exists() and not force:
        raise ConfigError(f"--output {path} exists; choose another file, or pass --force to replace it")
    if not path.parent.is_dir():
        raise ConfigError(f"--output {path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--output {path}: cannot write into {path.parent}")


def columns(unit_columns: Sequence[str], text_fields: Sequence[str]) -> list[str]:
    """The output's columns (module docstring); ``text_fields`` only when text is echoed."""
    return ["line", "id", *unit_columns, "job", "task", "label", "score", "probabilities", *text_fields]


class PredictionWriter:
    """Writes rows to a temporary file; ``commit`` moves it into place (or copies it to stdout).

    Use as a context manager: leaving the block by an exception removes the temporary file.
    """

    def __init__(self, path: Path | None, fmt: str, names: Sequence[str]):
        self.path, self.fmt, self.columns = path, fmt, list(names)
        folder = path.parent if path is not None else None
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}." if path else "harness-predict.", suffix=".tmp")
        self.tmp = Path(tmp)
        self.file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.file) if fmt == "csv" else None
        if self.csv is not None:
            self.csv.writerow(self.columns)
        self.rows = 0

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)  # committed: already renamed; failed: nothing partial stays

    def write(self, prediction: Prediction, job: str) -> None:
        row = self._row(prediction, job)
        if self.csv is not None:
            self.csv.writerow([_cell(row.get(name)) for name in self.columns])
        else:
            self.file.write(json.dumps({name: row.get(name) for name in self.columns}, ensure_ascii=False) + "\n")
        self.rows += 1

    def _row(self, p: Prediction, job: str) -> dict[str, Any]:
        row: dict[str, Any] = {
            "line": p.line,
            "id": p.id,
            "job": job,
            "task": p.task,
            "label": p.label,
            "score": p.score,
            "probabilities": p.probabilities,
            **p.texts,
        }
        if p.unit_column:
            row[p.unit_column] = p.unit
        return row

    def commit(self) -> None:
        """Put the finished output in place: rename the temporary file, or copy it to stdout."""
        self.file.close()
        if self.path is None:
            with open(self.tmp, encoding="utf-8", newline="") as f:
                shutil.copyfileobj(f, sys.stdout)
            sys.stdout.flush()
            return
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private
        os.replace(self.tmp, self.path)


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``;``-joined names for a list, JSON text for an object."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value
