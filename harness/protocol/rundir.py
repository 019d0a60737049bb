"""The run directory: resolved config, manifest, per-job results, results.json.

Files are written atomically (temp file + rename), so a killed run never leaves a
half-written JSON behind, and nothing already written is overwritten by a different run. A
running run holds the folder's lock (``.harness.lock``): a second run given the same
``--output`` at the same time is refused before it writes anything.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from harness.core.config import RESUMABLE_KEYS
from harness.core.shared import chmod_as_umask, shared_lock
from harness.data.textfile import read_text
from harness.errors import RunError

log = logging.getLogger("harness")

LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "accelerate",
    "datasets",
    "evaluate",
    "pluggy",
    "rich",
    "numpy",
    "scipy",
    "scikit-learn",
)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically (temp file + rename), readable as the umask allows (not mkstemp's 0600).

    Nothing is left behind when ``data`` cannot be serialised: the temp file is removed and the
    ``TypeError``/``ValueError`` propagates. A write the system refuses (a full disk, no permission)
    leaves ``path`` as it was and raises ``RunError`` naming it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise _unwritable(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        chmod_as_umask(Path(tmp), 0o666)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _unwritable(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unwritable(path: Path, exc: OSError) -> RunError:
    return RunError(f"cannot write {path}: {exc.strerror or exc}; free disk space (or fix the folder's permissions)")


def read_json(path: Path, keys: tuple[str, ...], fix: str) -> Any:
    """A run-directory JSON object holding ``keys``; ``RunError`` naming the file and ``fix`` otherwise."""
    try:
        data = json.loads(read_text(path, RunError))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc}); {fix}") from None
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise RunError(f"{path}: not a harness file of this version (no {', '.join(map(repr, missing))}); {fix}")
    return data


def differences(before: Any, after: Any, path: str = "", most: int = 6) -> list[str]:
    """``"key.sub: old -> new"`` for each leaf that differs between two JSON values (at most ``most``, then a count)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                out += differences(before.get(key), after.get(key), f"{path}.{key}" if path else str(key), most)
        if len(out) > most:
            return [*out[:most], f"{len(out) - most} more"]
        return out

    def show(value: Any) -> str:
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + "..."

    return [f"{path or 'value'}: {show(before)} -> {show(after)}"]


LOCK = ".harness.lock"  # in a run directory: locked by the process running there, for as long as it runs


def prepare(run_dir: Path, run_info: dict[str, Any], resume: bool, acc: Any) -> FileLock | None:
    """Create the run directory, or check that ``--resume`` continues the same run; lock it.

    A resume may change only the keys of ``RESUMABLE_KEYS`` (where the run reports);
    ``config.json`` keeps the settings the run was started with.

    A run directory in which no job has finished or saved a state (a run that failed before
    training anything) is started anew with the new settings, with or without ``--resume``.
    An existing folder that is not a run directory is refused, so nothing of the user's is mixed in.

    Returns the run directory's lock (``claim``), held by the main process (None on the others):
    the caller releases it when the run ends. Raises ``RunError`` when another process runs in
    ``run_dir`` (two runs in one folder would overwrite each other's jobs); the folder is
    checked before anything is created and again under the lock, so a refused run writes nothing.
    """
    _check(run_dir, run_info, resume)  # before anything is created: a refused run leaves no folder behind
    try:  # on every process, so that all of them stop alike when it fails
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--output {run_dir}: cannot create the run directory: {exc.strerror or exc}") from None
    lock = _lock(run_dir, acc)
    try:
        started = _check(run_dir, run_info, resume)  # again, now that no other run can change the folder
        if (run_dir / "config.json").exists() and not started:
            log.info("%s holds a run that trained nothing yet: starting it anew with these settings", run_dir)
        acc.wait_for_everyone()
        if acc.is_main_process and not started:
            write_json(run_dir / "config.json", run_info)
        acc.wait_for_everyone()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return lock


def _check(run_dir: Path, run_info: dict[str, Any], resume: bool) -> bool:
    """Whether ``run_dir`` holds a started run that this one continues; ``RunError`` when it must not be used.

    False for a new folder and for a run that failed before training anything (started anew).
    """
    config = run_dir / "config.json"
    if config.exists():
        if not trained_anything(run_dir):
            return False
        if not resume:
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it, or choose another --output")
        previous = _comparable(read_json(config, (), "restore it, or choose another --output"))
        current = _comparable(json.loads(json.dumps(run_info)))
        if previous != current:
            changed = "; ".join(differences(previous, current))
            raise RunError(
                f"--resume: {run_dir} was started with different settings ({changed}); "
                "rerun with the original flags, or choose another --output"
            )
        return True
    if resume:
        raise RunError(f"--resume: {run_dir} holds no run to resume; drop --resume to start one")
    if run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir()):
        raise RunError(f"--output {run_dir} is a non-empty folder that holds no harness run; choose a new folder")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--output {run_dir} is a file; choose a new folder")
    return False


def claim(run_dir: Path) -> FileLock:
    """Lock ``run_dir`` (its ``.harness.lock`` file) for this process; ``RunError`` when another holds it.

    An OS file lock (``filelock``, ``flock`` on POSIX): a killed run leaves it free, a run that
    finishes releases it. The lock file stays (removing it could let two runs hold two locks).
    """
    lock = shared_lock(run_dir / LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunError(
            f"--output {run_dir} is in use by another harness run (it holds {run_dir / LOCK}); "
            "wait for that run to end, or choose another --output"
        ) from None
    except OSError as exc:
        raise RunError(f"--output {run_dir}: cannot lock the run directory: {exc.strerror or exc}") from None
    return lock


def _lock(run_dir: Path, acc: Any) -> FileLock | None:
    """``claim`` on the main process; its outcome is shared, so that every process stops alike."""
    lock, error = None, ""
    if acc.is_main_process:
        try:
            lock = claim(run_dir)
        except RunError as exc:
            error = str(exc)
    if acc.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [error]
        broadcast_object_list(box)
        error = box[0]
    if error:
        if lock is not None:
            lock.release()
        raise RunError(error)
    return lock


def _comparable(run_info: Any) -> Any:
    """``run_info`` without the config keys a ``--resume`` may change (``RESUMABLE_KEYS``)."""
    if not isinstance(run_info, dict) or not isinstance(run_info.get("config"), dict):
        return run_info
    config = {k: v for k, v in run_info["config"].items() if k not in RESUMABLE_KEYS}
    return {**run_info, "config": config}


def trained_anything(run_dir: Path) -> bool:
    """True when a job of the run finished or saved a state to resume from (also one a kill left in
    ``state.tmp``: ``harness.training.resume.recover_state``)."""
    return any(run_dir.glob("jobs/*/result.json")) or any(
        any(run_dir.glob(f"jobs/*/{folder}/history.json")) for folder in ("state", "state.tmp")
    )


def git_revision() -> str | None:
    source = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=source, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_manifest(run_dir: Path, manager: Any, acc: Any, cfg: Any, results: dict[str, Any]) -> None:
    import torch

    from harness import __version__

    versions: dict[str, str | None] = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    from harness.training.model import encoder_identity

    manifest = {
        "harness": __version__,
        "python": sys.version.split()[0],
        "libraries": versions,
        "plugins": {name: manager.versions.get(name, "unknown") for name in manager.names()},
        "git_revision": git_revision(),
        "encoder": encoder_identity(cfg.model),
        # per job: "<stream>/<split>" -> content fingerprint of the rows and label columns it trained on
        "data_fingerprints": {key: r.get("data_fingerprints", {}) for key, r in sorted(results.items())},
        "seeds": cfg.seed_list,
        "config_hash": cfg.training_hash(),
        "hardware": {
            "device": str(acc.device),
            "num_processes": acc.num_processes,
            "distributed_type": str(acc.distributed_type),
            "mixed_precision": acc.mixed_precision,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
    write_json(run_dir / "manifest.json", manifest)
