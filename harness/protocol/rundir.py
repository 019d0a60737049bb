"""The run directory: resolved config, manifest, per-job results, results.json.

Files are written atomically (temp file + rename), so a killed run never leaves a
half-written JSON behind, and nothing already written is overwritten by a different run.
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

from harness.core.config import RESUMABLE_KEYS
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


def current_umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def chmod_as_umask(path: Path, mode: int) -> None:
    """Give ``path`` (made private by mkstemp/mkdtemp) the permissions ``mode`` under the process's umask."""
    os.chmod(path, mode & ~current_umask())


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


def prepare(run_dir: Path, run_info: dict[str, Any], resume: bool, acc: Any) -> None:
    """Create the run directory, or check that ``--resume`` continues the same run.

    A resume may change only the keys of ``RESUMABLE_KEYS`` (where the run reports);
    ``config.json`` keeps the settings the run was started with.

    A run directory in which no job has finished or saved a state (a run that failed before
    training anything) is started anew with the new settings, with or without ``--resume``.
    An existing folder that is not a run directory is refused, so nothing of the user's is mixed in.
    """
    config = run_dir / "config.json"
    started = config.exists() and trained_anything(run_dir)
    if started:
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
    elif config.exists():
        log.info("%s holds a run that trained nothing yet: starting it anew with these settings", run_dir)
    elif resume:
        raise RunError(f"--resume: {run_dir} holds no run to resume; drop --resume to start one")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise RunError(f"--output {run_dir} is a non-empty folder that holds no harness run; choose a new folder")
    elif run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"--output {run_dir} is a file; choose a new folder")
    try:  # on every process, so that all of them stop alike when it fails
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--output {run_dir}: cannot create the run directory: {exc.strerror or exc}") from None
    acc.wait_for_everyone()
    if acc.is_main_process and not started:
        write_json(config, run_info)
    acc.wait_for_everyone()


def _comparable(run_info: Any) -> Any:
    """``run_info`` without the config keys a ``--resume`` may change (``RESUMABLE_KEYS``)."""
    if not isinstance(run_info, dict) or not isinstance(run_info.get("config"), dict):
        return run_info
    config = {k: v for k, v in run_info["config"].items() if k not in RESUMABLE_KEYS}
    return {**run_info, "config": config}


def trained_anything(run_dir: Path) -> bool:
    """True when a job of the run finished or saved a state to resume from."""
    return any(run_dir.glob("jobs/*/result.json")) or any(run_dir.glob("jobs/*/state/history.json"))


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
