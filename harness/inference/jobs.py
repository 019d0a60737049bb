"""Which trained models of a run directory ``harness predict`` uses, and why one has none.

A run's jobs are its folders ``jobs/<key>/``; a finished one holds ``result.json``, and its
saved model ``best/`` (``harness.training.saved``) unless the run kept none. Selectors
(``--job``): ``all`` (the default: the all-task MTL job of the seed), ``stl`` (every STL job of
the seed), or a job key (a folder name, or an unambiguous beginning of one). The seed is the
run's first seed unless given. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import RunError

JOBS_DIR, RESULT_FILE, MODEL_DIR = "jobs", "result.json", "best"


@dataclass(frozen=True)
class RunJob:
    """One finished job of a run: its key (folder name), kind, tasks, seed and folder."""

    key: str
    kind: str
    tasks: tuple[str, ...]
    seed: int
    folder: Path

    @property
    def model(self) -> Path:
        return self.folder / MODEL_DIR

    def describe(self, all_task: bool = False) -> str:
        what = "the all-task MTL model" if all_task else f"the {self.kind.upper()} model"
        names = ", ".join(self.tasks) if len(self.tasks) <= 3 else f"{len(self.tasks)} tasks"
        return f"job {self.key} ({what} of seed {self.seed}: {names})"


@dataclass(frozen=True)
class RunInfo:
    """What ``harness predict`` reads of a run directory besides its jobs (``config.json``)."""

    folder: Path
    group: tuple[str, ...]  # the all-task MTL group
    seed: int  # the run's first seed
    keep_best: bool
    tasks: tuple[str, ...] = ()  # the run's tasks (each has an STL job per seed when stages holds "stl")
    stages: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()  # every seed of the run


def read_run(run_dir: Path) -> RunInfo:
    """The run's ``config.json``; ``RunError`` when ``run_dir`` is not a run directory."""
    if not run_dir.exists():
        raise RunError(f"run directory {run_dir} does not exist; pass the --output folder of a harness run")
    config = run_dir / "config.json"
    if not run_dir.is_dir() or not config.is_file():
        raise RunError(f"{run_dir} is not a harness run directory (no config.json); pass the --output of a harness run")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        cfg = data["config"]
        seed = int(cfg["seed"])
        return RunInfo(
            run_dir,
            tuple(data["group"]),
            seed,
            bool(cfg.get("keep_best", True)),
            tuple(data.get("tasks", ())),
            tuple(data.get("stages", ())),
            tuple(range(seed, seed + int(cfg.get("seeds", 1)))),
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise RunError(
            f"{config}: not a harness run configuration ({type(exc).__name__}); is {run_dir} a run?"
        ) from None


def finished_jobs(run_dir: Path) -> list[RunJob]:
    """Every job of the run with a ``result.json``, by key."""
    jobs = []
    for folder in sorted((run_dir / JOBS_DIR).glob(f"*/{RESULT_FILE}")):
        data = _result(folder)
        jobs.append(RunJob(folder.parent.name, data["kind"], tuple(data["tasks"]), int(data["seed"]), folder.parent))
    return jobs


def _result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and {"kind", "tasks", "seed"} <= set(data):
            return data
    except (OSError, UnicodeDecodeError, ValueError):
        pass
    raise RunError(f"{path}: not a job result of harness; delete {path.parent} and resume the run to train it again")


def select_jobs(run: RunInfo, selectors: Sequence[str], seed: int | None = None) -> list[tuple[RunJob, bool]]:
    """The jobs ``selectors`` name, in order, each with whether it is the all-task job; ``RunError``
    naming the finished jobs when a selector matches none (or an unfinished or ``init`` job)."""
    seed = run.seed if seed is None else seed
    jobs = finished_jobs(run.folder)
    if not jobs:
        raise RunError(f"{run.folder} has no finished job yet; finish the run (harness run ... --resume) first")
    chosen: list[tuple[RunJob, bool]] = []
    for selector in selectors or ["all"]:
        for job in _match(run, jobs, selector, seed):
            if job.key not in {j.key for j, _ in chosen}:
                chosen.append((job, _is_all(run, job)))
    return chosen


def missing_stl(run: RunInfo, seed: int | None = None) -> list[str]:
    """What ``--job stl`` leaves out, one line each (job keys and task names, never data): every
    ``stl-SEED-...`` job folder without ``result.json`` (failed: it holds ``error.json``; else
    unfinished), and, when the run has an STL stage and the seed is one of its seeds, every task
    of the run without an STL job folder of the seed (not started)."""
    seed = run.seed if seed is None else seed
    resume = f"run `harness run ... --output {run.folder} --resume`"
    lines = []
    folders = sorted(p for p in (run.folder / JOBS_DIR).glob(f"stl-{seed}-*") if p.is_dir())
    for folder in folders:
        if (folder / RESULT_FILE).is_file():
            continue
        if (folder / "error.json").is_file():
            why = f"failed: {folder / 'error.json'} says why; fix that and {resume}"
        else:
            why = f"unfinished: no {RESULT_FILE}; {resume}"
        lines.append(f"--job stl: skipping job {folder.name} ({why})")
    if "stl" in run.stages and seed in run.seeds:
        for task in run.tasks:
            if f"stl-{seed}-{task[:48]}" not in {p.name.rsplit("-", 1)[0] for p in folders}:  # key: ...-<hash>
                lines.append(f"--job stl: no STL model of task {task} (seed {seed}): its job has not started; {resume}")
    return lines


def _is_all(run: RunInfo, job: RunJob) -> bool:
    return job.kind == "mtl" and job.tasks == run.group


def _match(run: RunInfo, jobs: list[RunJob], selector: str, seed: int) -> list[RunJob]:
    if selector == "all":
        found = [j for j in jobs if _is_all(run, j) and j.seed == seed]
        if not found:
            raise RunError(
                f"{run.folder} has no finished all-task MTL job of seed {seed} (group {', '.join(run.group)}); "
                f"pick one with --job: {_listing(jobs)}"
            )
        return found
    if selector == "stl":
        found = [j for j in jobs if j.kind == "stl" and j.seed == seed]
        if not found:
            raise RunError(f"{run.folder} has no finished STL job of seed {seed}; finished jobs: {_listing(jobs)}")
        return found
    exact = [j for j in jobs if j.key == selector]
    found = exact or [j for j in jobs if j.key.startswith(selector)]
    if len(found) > 1:
        raise RunError(f"--job {selector!r} matches {len(found)} jobs ({_listing(found)}); give more of the key")
    if not found:
        unfinished = run.folder / JOBS_DIR / selector
        if unfinished.is_dir():
            raise RunError(f"job {selector} of {run.folder} has not finished (no {RESULT_FILE}); resume the run")
        raise RunError(_unknown_job(run, selector, jobs))
    if found[0].kind == "init":
        raise RunError(f"job {found[0].key} is an init job (the untrained model's measurements): it has no model")
    return found


SHOWN_KEYS = 10  # an unknown --job lists this many known selectors (a pairs run has hundreds of jobs)


def _unknown_job(run: RunInfo, selector: str, jobs: Sequence[RunJob]) -> str:
    """One line: the selector is unknown, the first ``SHOWN_KEYS`` known selectors and how many
    more, and the closest one (to a whole key, or to a key's beginning as long as the selector)."""
    known = ["all", "stl", *(j.key for j in jobs if j.kind != "init")]
    shown = ", ".join(known[:SHOWN_KEYS])
    if len(known) > SHOWN_KEYS:
        shown += f" ... and {len(known) - SHOWN_KEYS} more (ls {run.folder / JOBS_DIR} lists them)"
    guess = _closest(selector, known)
    return f"{run.folder}: unknown job {selector!r} (known: {shown})" + (f". Did you mean {guess!r}?" if guess else "")


def _closest(selector: str, keys: Sequence[str], cutoff: float = 0.6) -> str | None:
    """The key most like ``selector`` (``difflib`` ratio at least ``cutoff``), compared with the whole
    key and with its beginning as long as the selector (a typo in a key's beginning); ties go to
    the key more like the selector as a whole, then to the first."""

    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()

    scored = [(max(ratio(selector, k[: len(selector)]), ratio(selector, k)), ratio(selector, k), k) for k in keys]
    best = max(scored, key=lambda s: s[:2], default=None)
    return best[2] if best is not None and best[0] >= cutoff else None


def _listing(jobs: Sequence[RunJob]) -> str:
    keys = [j.key for j in jobs if j.kind != "init"]
    return ", ".join(keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "") if keys else "none"


def missing_model(run: RunInfo, job: RunJob) -> str:
    """Why ``job`` has no whole saved model (``best/harness.json``), and what to do: one line."""
    from harness.protocol.jobstore import reused_from

    where = f"job {job.key} has no saved model"
    entry = reused_from(job.folder)
    if entry is not None:
        source = _entry_source(Path(entry))
        text = (
            f"{where}: it was reused from the job store ({entry}), and that entry holds none (the job was trained "
            "with keep_best=false, or stored before the store kept models)"
        )
        if source is not None and (source / MODEL_DIR / "harness.json").is_file():
            command = f"harness predict {source.parent.parent} --job {source.name}"
            return f"{text}; the run that trained it still has it: {command}"
        trained = f"; it was trained in {source}" if source is not None else ""
        return f"{text}{trained}; train it again for a model: harness run ... --job-store none"
    if not run.keep_best:
        return f"{where}: the run was made with keep_best=false; train again with --set keep_best=true"
    return f"{where} ({job.model} is missing); train the job again (delete {job.folder} and resume the run)"


def _entry_source(entry: Path) -> Path | None:
    """The job folder of the run that trained a store entry (its ``entry.json`` "source")."""
    try:
        source = json.loads((entry / "entry.json").read_text(encoding="utf-8")).get("source")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return Path(source) if isinstance(source, str) else None


def model_folder(run: RunInfo, job: RunJob) -> Path:
    """``job``'s saved model folder, checked (its description read); ``RunError`` saying why there is none."""
    from harness.training.saved import MODEL_INFO, read_info

    if not (job.model / MODEL_INFO).is_file() and not any(job.model.glob("*.safetensors")):
        raise RunError(missing_model(run, job))
    read_info(job.model)  # an older harness's weights-only folder, or a damaged description: its own message
    return job.model
