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

Rows go to a temporary file that becomes the output only when every row is written: an error
leaves no output and no partial file. Where the rows end up (``output_target``):

* a regular file (symlinks resolved: the file a link points to is written, the link stays):
  the temporary file ``.NAME.XXXX.tmp`` beside it replaces it by a rename, with the replaced
  file's permission bits (a new file gets the umask's);
* a character device or a FIFO (``/dev/null``, a terminal, a named pipe): never renamed
  over; the temporary file is in the temp folder, and its rows are copied into the device when
  every row is written, as for stdout;
* anything else (a folder, a socket, a block device, a symlink loop) is refused.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.errors import ConfigError, RunError
from harness.inference.engine import Prediction

OUTPUT_FORMATS = ("jsonl", "csv")


def output_format(path: Path | None, given: str | None) -> str:
    """``given``, else ``csv`` for a ``.csv`` output, else ``jsonl``."""
    if given:
        return given
    return "csv" if path is not None and path.suffix.lower() == ".csv" else "jsonl"


@dataclass(frozen=True)
class OutputTarget:
    """Where ``--output`` puts its rows: ``path`` (symlinks resolved for a file) and ``kind``:
    ``file`` (a regular file, replaced), ``new`` (created) or ``stream`` (a character device or
    FIFO, written into: ``path`` is then ``--output`` as given, opened through its links)."""

    path: Path
    kind: str


def output_target(path: Path) -> OutputTarget:
    """What ``path`` names, following its symlinks; ``ConfigError`` for a folder, a symlink loop,
    a socket, a block device or anything else that is neither a file, a character device nor a
    FIFO, and for a file whose folder does not exist."""
    try:
        st = os.stat(path)  # follows every link, /proc/self/fd's too
    except FileNotFoundError:
        st = None  # nothing yet, or a symlink to nothing: the file is created where the link points
    except OSError as exc:  # a loop, a folder on the way that cannot be searched, ...
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"--output {path}: a symlink loop; name a file") from None
        raise ConfigError(f"--output {path}: cannot look at it ({exc.strerror or exc}); name a file") from None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        return OutputTarget(path, "stream")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--output {path} is a folder; name a file")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"--output {path} is a {_file_kind(st.st_mode)}, not a file, character device or FIFO; name a file"
        )
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # a loop (RuntimeError before Python 3.13)
        raise ConfigError(f"--output {path}: a symlink loop; name a file") from None
    if not target.parent.is_dir():
        shown = f"{target.parent}" + (f" (where the symlink {path} points)" if target.parent != path.parent else "")
        raise ConfigError(f"--output {path}: the folder {shown} does not exist; create it first")
    return OutputTarget(target, "file" if st is not None else "new")


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISSOCK: "socket", stat.S_ISBLK: "block device"}
    return next((name for test, name in kinds.items() if test(mode)), "special file")


def check_output(path: Path | None, force: bool) -> None:
    """``ConfigError`` for an output that exists (without ``force``: a dangling symlink counts), or
    that ``output_target`` refuses, or that cannot be written (its folder, or the device)."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"--output {path} is a folder; name a file")
    if os.path.lexists(path) and not force:
        raise ConfigError(f"--output {path} exists; choose another file, or pass --force to replace it")
    target = output_target(path)
    if target.kind == "stream":
        if not os.access(path, os.W_OK):
            raise ConfigError(f"--output {path}: cannot write into it (permission denied)")
    elif not os.access(target.path.parent, os.W_OK):
        raise ConfigError(f"--output {path}: cannot write into {target.path.parent}")


def columns(unit_columns: Sequence[str], text_fields: Sequence[str]) -> list[str]:
    """The output's columns (module docstring); ``text_fields`` only when text is echoed."""
    return ["line", "id", *unit_columns, "job", "task", "label", "score", "probabilities", *text_fields]


class PredictionWriter:
    """Writes rows to a temporary file; ``commit`` moves it into place (or copies it to stdout).

    Use as a context manager: leaving the block by an exception removes the temporary file.
    """

    def __init__(self, path: Path | None, fmt: str, names: Sequence[str]):
        self.path, self.fmt, self.columns = path, fmt, list(names)
        self.target = output_target(path) if path is not None else None
        beside = self.target is not None and self.target.kind != "stream"  # else in the temp folder
        folder = self.target.path.parent if self.target is not None and beside else None
        prefix = f".{self.target.path.name}." if self.target is not None and beside else "harness-predict."
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
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
        """Put the finished output in place (module docstring): rename the temporary file over a
        regular file (keeping its permission bits), or copy it into a device, a FIFO or stdout."""
        self.file.close()
        if self.target is None:
            with open(self.tmp, encoding="utf-8", newline="") as f:
                shutil.copyfileobj(f, sys.stdout)
            sys.stdout.flush()
            return
        if self.target.kind == "stream":  # opened without O_CREAT: never a new file in its place
            try:
                fd = os.open(self.target.path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
                with os.fdopen(fd, "wb") as out, open(self.tmp, "rb") as f:
                    shutil.copyfileobj(f, out)
            except BrokenPipeError:
                raise  # the reader went away: harness.cli ends it as any closed pipe
            except OSError as exc:  # a full device, a vanished FIFO, ...
                raise RunError(f"--output {self.target.path}: writing into it failed ({exc.strerror or exc})") from None
            return
        try:
            mode = stat.S_IMODE(os.stat(self.target.path).st_mode)  # the replaced file's
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp made it private
        os.chmod(self.tmp, mode)
        os.replace(self.tmp, self.target.path)


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, ``;``-joined names for a list, JSON text for an object."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value
