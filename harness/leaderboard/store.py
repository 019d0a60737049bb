"""The leaderboard folder: one JSON file per run under ``DIR/runs/``; the files are the source of truth.

Writing is atomic and never replaces a file: the record is written to a temporary file in the
same folder, flushed to disk, then hard-linked to its final name (``os.link`` fails when the
name exists) and the temporary name removed. A writer killed at any point leaves either no
record or a whole one, plus at most a dot-file the reader ignores. Concurrent runs write
different files (the run id holds the time and the results' hash), so none loses another's.
Checking that a run is not recorded yet and adding its file happen under one lock
(``runs/.lock``, ``filelock``): two runs with the same job results (reused from one job store)
finishing at once record one file, not two, and neither fails.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from harness.core.shared import chmod_as_umask, shared_lock
from harness.errors import LeaderboardError
from harness.leaderboard.records import SCHEMA_VERSION, RunRecord

log = logging.getLogger("harness")

RUNS = "runs"
LOCK = ".lock"  # in runs/: held while a writer looks for its run and adds its file


def runs_dir(directory: Path) -> Path:
    return Path(directory) / RUNS


def write_record(directory: Path, record: RunRecord) -> Path:
    """Add ``record`` to the leaderboard in ``directory`` (created) and return its file.

    Raises ``LeaderboardError`` when this run (same ``results.json`` hash) is already recorded,
    or when a file of that run id exists; nothing already written is touched.
    """
    path, new = record_once(directory, record)
    if not new:
        raise LeaderboardError(
            f"this run is already on the leaderboard as {path}; a run is recorded once, resumed or not "
            "(delete that file first to record it again)"
        )
    return path


def record_once(directory: Path, record: RunRecord) -> tuple[Path, bool]:
    """``record``'s file in the leaderboard, written now (True) unless its run is recorded already (False).

    The check and the write hold the leaderboard's lock, so concurrent writers of one run agree
    on one file. Raises ``LeaderboardError`` when the folder cannot be written or a file of the
    record's run id holds another run.
    """
    folder = runs_dir(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = shared_lock(folder / LOCK)
        lock.acquire()
    except OSError as exc:
        raise LeaderboardError(f"{directory}: cannot create {folder}: {exc.strerror or exc}") from None
    try:
        path = find_run(directory, record.provenance.run_sha256)
        return (path, False) if path is not None else (_write(folder, record), True)
    finally:
        lock.release()


def _write(folder: Path, record: RunRecord) -> Path:
    """Write ``record`` as a new file in ``folder``: temp file, fsync, hard link to its name."""
    target = folder / f"{record.run_id}.json"
    text = json.dumps(record.to_json(), indent=1) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{record.run_id}.", suffix=".tmp")
    except OSError as exc:
        raise LeaderboardError(f"{folder}: cannot write a record there: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        chmod_as_umask(Path(tmp), 0o666)
        _link(Path(tmp), target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _fsync_dir(folder)
    return target


def find_run(directory: Path, run_sha256: str) -> Path | None:
    """The record file of the run with this ``run_sha256`` in the leaderboard, if any."""
    folder = runs_dir(directory)
    if not folder.is_dir():
        return None
    for path, other in _scan(folder):
        if other.get("provenance", {}).get("run_sha256") == run_sha256:
            return path
    return None


def _link(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise LeaderboardError(f"{target} already exists; record the run under another --run-id") from None
    except OSError as exc:  # a file system without hard links: exclusive create, then an atomic rename over it
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise LeaderboardError(f"{target} already exists; record the run under another --run-id") from None
        os.replace(tmp, target)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _scan(folder: Path) -> list[tuple[Path, dict]]:  # type: ignore[type-arg]
    """(path, raw JSON) of every record file; unreadable ones are skipped here (``read_records`` reports them)."""
    out = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append((path, data))
    return out


def read_record(path: Path) -> RunRecord:
    """One record file, validated; ``LeaderboardError`` naming the file and the first problems otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LeaderboardError(f"{path}: cannot read the record: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LeaderboardError(f"{path}: not valid JSON ({exc}); restore it from git or delete it") from None
    found = data.get("schema_version") if isinstance(data, dict) else None
    if found != SCHEMA_VERSION:
        raise LeaderboardError(
            f"{path}: a leaderboard record of schema version {found!r}; this harness reads version "
            f"{SCHEMA_VERSION}: use the harness version that wrote it, or record the run again"
        )
    try:
        return RunRecord.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in exc.errors()[:3]
        )
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise LeaderboardError(
            f"{path}: not a valid leaderboard record: {problems}{more}; restore it from git or delete it"
        ) from None


def read_records(directory: Path) -> list[RunRecord]:
    """Every record under ``directory/runs``, oldest first. Temporary dot-files of writers are ignored.

    Raises ``LeaderboardError`` when the folder holds no leaderboard, a file is invalid, or two
    files hold the same run id.
    """
    folder = runs_dir(directory)
    if not folder.is_dir():
        raise LeaderboardError(
            f"{directory}: no leaderboard here (no {RUNS}/ folder); record a run with "
            f"`harness run ... --leaderboard {directory}` or `harness leaderboard add RUN_DIR --dir {directory}`"
        )
    records = [read_record(p) for p in sorted(folder.glob("*.json")) if not p.name.startswith(".")]
    seen: dict[str, str] = {}
    for r in records:
        if r.run_id in seen:
            raise LeaderboardError(f"{folder}: run id {r.run_id!r} is in two files; delete one")
        seen[r.run_id] = r.run_id
    return sorted(records, key=lambda r: (r.provenance.finished, r.run_id))
