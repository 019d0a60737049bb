"""The job store: finished jobs shared across run directories, content-addressed.

A job's store key hashes everything that changes what it computes: the job spec's content
(``JobSpec.content``: kind, tasks, seed, training-config hash, loader spec, probe), whether
the best checkpoint is kept (features are taken from it), the content fingerprints of every
stream/split the job and its probe read (checked before any job: an edited data file gives new
fingerprints), the encoder's identity (weights and tokenizer hash), and the harness, plugin and
task versions. Layout of a store folder::

    <key>/                 a finished entry (appears whole: renamed into place)
      entry.json           what the key hashes, kind, tasks, seed, harness version, created
      result.json          the JobResult
      features.npy         probe-set features (STL and init jobs)
      best/                the job's saved model (``harness.training.saved``) when it kept one:
                           hard links to the files of the run that trained it (no second copy)
    .tmp/<key>.<random>/   an entry being written (or left by a killed writer; ``gc`` removes it)
    .locks/<key>.lock      one lock per key (``filelock``)

Every operation on a key holds its lock: a writer from the moment it finds no entry until it
has published (so a second run needing the job waits for it instead of training it too), a
reader while it links the entry into its run directory, ``gc`` while it removes the entry.

The saved model (``best/``) is stored too, because ``harness predict`` reads it: a run whose
jobs were reused gets the models with the results. The entry's files are hard links to the
trainer's files (copies across filesystems), so the store costs no disk while that run
directory exists. ``keep_best`` is part of every key, so a run that keeps models never reuses
an entry stored without one (``keep_best=false``: its ``entry.json`` says ``"model": false``);
an entry written before models were stored is still reused, and ``harness predict`` names the
run that trained the job.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from harness.core.shared import chmod_as_umask, shared_lock
from harness.errors import ConfigError, RunError
from harness.protocol.plan import JobSpec
from harness.protocol.results import JobResult
from harness.training.resume import STATE, STATE_OLD, STATE_TMP
from harness.training.saved import MODEL_INFO, recover

log = logging.getLogger("harness")

ENTRY_VERSION = 1
ENTRY_FILE = "entry.json"
RESULT_FILE = "result.json"
REUSED_FILE = "reused.json"  # in a run's job folder: the store entry the job was reused from
MODEL_DIR = "best"  # a job's saved model (harness.training.saved; its harness.json present = whole)
TMP, LOCKS = ".tmp", ".locks"

_CLAIMS: dict[str, FileLock] = {}  # lock file -> lock held by this process for a job it trains


class JobInProgress(RunError):
    """Another process holds the job's lock (it is training the job); raised with ``wait=False``."""


def store_root(setting: str) -> Path | None:
    """The store folder of a ``job_store`` setting: ``"none"`` = no store; ``""`` = ``$HARNESS_JOB_STORE``,
    else ``$HARNESS_CACHE/jobs``; anything else is the folder."""
    from harness.data.streams import cache_dir

    setting = setting or os.environ.get("HARNESS_JOB_STORE", "")
    if setting.strip().lower() == "none":
        return None
    return Path(setting).expanduser() if setting else cache_dir() / "jobs"


def check_root(root: Path | None) -> None:
    """``ConfigError`` when the store folder cannot be created or written."""
    if root is None:
        return
    try:
        (root / LOCKS).mkdir(parents=True, exist_ok=True)
        (root / TMP).mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as exc:
        raise ConfigError(
            f"job store {root}: cannot write there ({exc.strerror or exc}); choose another with --job-store DIR "
            "(config key job_store), or --job-store none"
        ) from None


@dataclass(frozen=True)
class JobStore:
    """A store folder and what every job key of one run shares.

    ``fingerprints``: "<stream>/<split>" -> content fingerprint (``check_data``: a sha256 of the rows); ``streams``:
    task -> its stream key; ``encoder``: ``encoder_identity`` of the model; ``versions``: per
    task, its version and the versions of the plugins of the task and of its metrics, plus
    ``harness``. Plain data: it pickles to worker processes.
    """

    root: Path
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    streams: Mapping[str, str] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)

    def contents(self, job: JobSpec) -> dict[str, Any]:
        """Everything the store key hashes for ``job``."""
        tasks = sorted(set(job.tasks) | set(job.probe))
        streams = {self.streams[t] for t in tasks}
        return {
            "job": job.content(),
            # features of the best epoch or the last; and whether the entry holds the model a run keeping models needs
            "keep_best": job.config.keep_best,
            "data": {k: v for k, v in sorted(self.fingerprints.items()) if k.rsplit("/", 1)[0] in streams},
            "encoder": dict(self.encoder),
            "versions": {"harness": self.versions.get("harness"), **{t: self.versions.get(t) for t in tasks}},
        }

    def key(self, job: JobSpec) -> str:
        """``<kind>-<seed>-<tasks>-<hash>`` as the run directory's job key, the hash over ``contents``."""
        digest = hashlib.sha256(json.dumps(self.contents(job), sort_keys=True).encode()).hexdigest()[:16]
        return f"{job.key().rsplit('-', 1)[0]}-{digest}"

    def entry(self, job: JobSpec) -> Path:
        return self.root / self.key(job)

    def lookup(self, job: JobSpec, job_dir: Path, wait: bool = True) -> JobResult | None:
        """The job's stored result, linked into ``job_dir``; None (and the key claimed) when there is none.

        Waits while another process holds the key (it is training the job), then looks again;
        with ``wait=False`` raises ``JobInProgress`` instead. After None, this process holds the
        key's lock until ``publish`` or ``release``.
        """
        key = self.key(job)
        lock = self.lock(key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise JobInProgress(f"job {key} is being trained by another process") from None
            log.info("%s: another run is training it (lock %s); waiting for it", job.describe(), lock.lock_file)
            lock.acquire()
        try:
            found = read_entry(self.root / key)
            if found is not None:
                materialise(self.root / key, job_dir, found)
                os.utime(self.root / key)  # last used, for gc
        except BaseException:
            lock.release()
            raise
        if found is not None:
            lock.release()
            return found
        _CLAIMS[lock.lock_file] = lock
        return None

    def publish(self, job: JobSpec, job_dir: Path, result: JobResult) -> Path:
        """Store the finished job (its result and features) under its key and release the claim.

        Written into a temporary folder inside the store, then renamed into place: no reader
        sees a half-written entry, and a killed writer leaves only a ``.tmp`` folder. When the
        key already holds a whole entry (another writer won), that one stays.
        """
        key = self.key(job)
        entry = self.root / key
        if str(self.root / LOCKS / f"{key}.lock") not in _CLAIMS:  # published without a lookup: lock it now
            lock = self.lock(key)
            lock.acquire()
            _CLAIMS[lock.lock_file] = lock
        try:
            (self.root / TMP).mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.root / TMP))
            try:
                chmod_as_umask(tmp, 0o777)  # mkdtemp makes it 0700: others sharing the store could not read it
                _write_entry(tmp, job, job_dir, result, self.contents(job), key)
                if entry.exists() and read_entry(entry, quiet=True) is None:
                    _discard(entry, self.root)  # a damaged entry (files deleted by hand; warned at lookup): replaced
                try:
                    os.rename(tmp, entry)
                except OSError:  # another writer published first: theirs is as good
                    log.info("job store: %s was published by another run; keeping that entry", key)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            self.release(job)
        return entry

    def release(self, job: JobSpec) -> None:
        """Give up this process's claim on the job's key (after publishing, or when the job failed)."""
        lock = _CLAIMS.pop(str(self.root / LOCKS / f"{self.key(job)}.lock"), None)
        if lock is not None:
            lock.release()

    def lock(self, key: str) -> FileLock:
        return key_lock(self.root, key)


def key_lock(root: Path, key: str) -> FileLock:
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    # thread_local=False: an executor may claim in one thread and publish from another; mode: the
    # lock file as the umask allows (filelock's default 0644 locks other users of a shared store out)
    return shared_lock(root / LOCKS / f"{key}.lock")


def read_entry(entry: Path, quiet: bool = False) -> JobResult | None:
    """The entry's JobResult when the entry is whole (entry and result files, its features); else None
    (with a warning that the job is trained again, unless ``quiet``)."""
    try:
        meta = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        result = JobResult.from_json(json.loads((entry / RESULT_FILE).read_text(encoding="utf-8")), entry)
    except (OSError, ValueError, TypeError, RunError):
        if entry.exists() and not quiet:
            log.warning("job store entry %s is damaged or of another version; the job is trained again", entry)
        return None
    incomplete = bool(result.features and not _whole_array(entry / result.features))
    if meta.get("model") and not (entry / MODEL_DIR / MODEL_INFO).is_file():
        incomplete = True
    if meta.get("version") != ENTRY_VERSION or incomplete:
        if not quiet:
            log.warning("job store entry %s is incomplete; the job is trained again", entry)
        return None
    return result


def _whole_array(path: Path) -> bool:
    """Whether ``path`` is a whole ``.npy`` of plain numbers: its header parses and the file holds all
    its bytes (a memory map of a cut file fails), without reading the data or unpickling anything."""
    import numpy as np

    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return True


def _write_entry(
    folder: Path, job: JobSpec, job_dir: Path, result: JobResult, contents: dict[str, Any], key: str
) -> None:
    from harness import __version__

    for name in _files(result):
        shutil.copyfile(job_dir / name, folder / name)
    model = _has_model(job_dir)
    if model:
        _link_tree(job_dir / MODEL_DIR, folder / MODEL_DIR)
    meta = {
        "version": ENTRY_VERSION,
        "key": key,
        "kind": job.kind,
        "tasks": list(job.tasks),
        "seed": job.seed,
        "harness": __version__,
        "created": time.time(),
        "source": str(job_dir.resolve()),
        "model": model,  # best/ holds the job's saved model
        "contents": contents,
    }
    (folder / ENTRY_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    for path in folder.rglob("*"):
        if path.is_file():  # read-only: the run directories that reuse the entry hold hard links to these files
            path.chmod(0o444)


def _has_model(job_dir: Path) -> bool:
    recover(job_dir / MODEL_DIR)
    return (job_dir / MODEL_DIR / MODEL_INFO).is_file()


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (copy across filesystems) the files of folder ``source`` into a new folder ``target``."""
    target.mkdir()
    for file in sorted(source.iterdir()):
        if file.is_file():
            _link(file, target / file.name)


def _files(result: JobResult) -> list[str]:
    """The job folder's files a later stage reads: the result last (it marks a finished job)."""
    return [*([result.features] if result.features else []), RESULT_FILE]


def materialise(entry: Path, job_dir: Path, result: JobResult) -> None:
    """Link (hard links; copies across filesystems) the entry's files, and its model, into ``job_dir``.

    ``reused.json`` records where from; ``result.json`` comes last, so a killed copy leaves
    no job folder that looks finished. A partial state of an interrupted attempt is removed.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    for stale in (STATE, STATE_TMP, STATE_OLD, MODEL_DIR, f"{MODEL_DIR}.tmp", f"{MODEL_DIR}.old"):
        shutil.rmtree(job_dir / stale, ignore_errors=True)  # an interrupted attempt's: not this result's model
    names = _files(result)
    for name in names[:-1]:
        _link(entry / name, job_dir / name)
    if (entry / MODEL_DIR / MODEL_INFO).is_file():
        _link_tree(entry / MODEL_DIR, job_dir / MODEL_DIR)
    note = {"reused_from": str(entry.resolve()), "store_key": entry.name, "reused_at": time.time()}
    (job_dir / REUSED_FILE).write_text(json.dumps(note, indent=1) + "\n", encoding="utf-8")
    _link(entry / names[-1], job_dir / names[-1])


def _link(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not supported
        shutil.copyfile(source, target)


def reused_from(job_dir: Path) -> str | None:
    """The store entry a run's job folder was reused from; None when the run trained the job."""
    try:
        return str(json.loads((job_dir / REUSED_FILE).read_text(encoding="utf-8"))["reused_from"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _discard(entry: Path, root: Path) -> None:
    """Remove an entry: renamed out of place first, so no reader sees it half removed."""
    (root / TMP).mkdir(parents=True, exist_ok=True)
    trash = Path(tempfile.mkdtemp(prefix=f"{entry.name}.removed.", dir=root / TMP))
    os.rename(entry, trash / entry.name)
    shutil.rmtree(trash, ignore_errors=True)


# --- cache ls / gc ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryInfo:
    key: str
    kind: str
    tasks: list[str]
    seed: int | None
    size: int  # bytes
    created: float  # epoch seconds
    last_used: float
    harness: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "tasks": self.tasks,
            "seed": self.seed,
            "size": self.size,
            "created": _iso(self.created),
            "last_used": _iso(self.last_used),
            "harness": self.harness,
        }


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(stamp))


def list_entries(root: Path) -> list[EntryInfo]:
    """The store's entries, least recently used first (a damaged one is listed with kind '?')."""
    out = []
    for entry in (
        sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    ):
        try:
            meta = json.loads((entry / ENTRY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        try:
            size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            stat = entry.stat()
        except FileNotFoundError:
            continue  # removed meanwhile (another gc, or a damaged entry replaced by its writer)
        out.append(
            EntryInfo(
                entry.name,
                str(meta.get("kind", "?")),
                list(meta.get("tasks", [])),
                meta.get("seed"),
                size,
                float(meta.get("created", stat.st_mtime)),
                stat.st_mtime,
                str(meta.get("harness", "?")),
            )
        )
    return sorted(out, key=lambda e: (e.last_used, e.key))


def gc_plan(entries: Sequence[EntryInfo], older_than_days: float | None, max_size: int | None) -> list[EntryInfo]:
    """Entries to remove, least recently used first: unused for more than ``older_than_days``, then
    the least recently used until the rest fit in ``max_size`` bytes."""
    now = time.time()
    doomed = [e for e in entries if older_than_days is not None and now - e.last_used > older_than_days * 86400]
    total = sum(e.size for e in entries if e not in doomed)
    for e in entries:  # least recently used first
        if max_size is None or total <= max_size:
            break
        if e not in doomed:
            doomed.append(e)
            total -= e.size
    return doomed


def collect(root: Path, doomed: Iterable[EntryInfo], dry_run: bool) -> tuple[list[EntryInfo], list[EntryInfo]]:
    """Remove ``doomed`` entries and the temporary folders of dead writers; (removed, skipped because locked).

    An entry whose lock another process holds (being written or read) is skipped, as is the
    temporary folder of a writer that still holds its key.
    """
    removed, locked = [], []
    for e in doomed:
        lock = key_lock(root, e.key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            locked.append(e)
            continue
        try:
            if not dry_run and (root / e.key).exists():
                _discard(root / e.key, root)
            removed.append(e)
        finally:
            lock.release()
    if not dry_run:
        _collect_tmp(root)
    return removed, locked


def _collect_tmp(root: Path) -> None:
    for tmp in sorted((root / TMP).iterdir()) if (root / TMP).is_dir() else []:
        # "<key>.<random>" (an entry being written) or "<key>.removed.<random>"; keys hold dots (task names)
        key = tmp.name.split(".removed.", 1)[0] if ".removed." in tmp.name else tmp.name.rsplit(".", 1)[0]
        lock = key_lock(root, key)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # its writer is alive
        try:
            shutil.rmtree(tmp, ignore_errors=True)
        finally:
            lock.release()


SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``500M``, ``2G``, ``1.5GB``, ``10k``, ``4096`` -> bytes (powers of 1024)."""
    match = SIZE.match(text)
    if match is None:
        raise ConfigError(f"--max-size {text!r}: expected a size such as 500M, 2G or 4096 (bytes)")
    number, unit = match.groups()
    return int(float(number) * 1024 ** "bkmgt".index(unit.lower() or "b"))
