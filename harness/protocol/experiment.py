"""The protocol of one ``harness run``: plan STL and MTL jobs, run them, measure the gaps.

Jobs are content-addressed (kind, tasks, seed, training-config hash) inside the run
directory: a finished job is never run again, and ``--resume`` continues an unfinished one
from its last saved state.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import LoadContext, TaskSpec
from harness.core.config import RunConfig
from harness.core.plugins import PluginManager, Registries
from harness.errors import ConfigError, DataError, RunError
from harness.protocol.plan import Job, Plan

log = logging.getLogger("harness")


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """Two-sided Student-t confidence interval of the mean; None with fewer than two values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, df=len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return [float(x.mean() - half), float(x.mean() + half)]


def summarise(
    results: dict[str, dict[str, Any]], plan: Plan, tasks: dict[str, TaskSpec], registries: Registries
) -> dict[str, Any]:
    """Per task: STL and MTL metrics over seeds, and the paired MTL - STL gap on the primary metric."""
    by_key = {(r["kind"], tuple(r["tasks"]), r["seed"]): r for r in results.values()}
    summary: dict[str, Any] = {}
    for name in plan.tasks:
        task = tasks[name]
        primary = task.metrics[0]
        stl = [by_key[("stl", (name,), s)] for s in plan.seeds]
        entry: dict[str, Any] = {
            "primary": primary,
            "higher_is_better": registries.metrics.get(primary).higher_is_better,
            "split": stl[0]["splits"][name],
            "stl": _per_metric([r["metrics"][name] for r in stl], task.metrics),
            "best_epochs": {"stl": [r["best_epoch"] for r in stl]},  # per seed: is a model still improving?
        }
        if "thresholds" in stl[0] and name in stl[0]["thresholds"]["values"]:
            entry["thresholds"] = stl[0]["thresholds"]["mode"]  # multi-label decision thresholds: fixed | tuned
        if name in plan.group:
            mtl = [by_key[("mtl", plan.group, s)] for s in plan.seeds]
            splits = {r["splits"][name] for r in stl + mtl}
            if len(splits) != 1:  # same rows, same labels: only a bug or edited files can get here
                raise RunError(f"task {name!r} was scored on different splits by its jobs ({sorted(splits)})")
            entry["mtl"] = _per_metric([r["metrics"][name] for r in mtl], task.metrics)
            entry["best_epochs"]["mtl"] = [r["best_epoch"] for r in mtl]
            pairs = [(m["metrics"][name][primary], s["metrics"][name][primary]) for m, s in zip(mtl, stl, strict=True)]
            diffs: list[float] = [m - s for m, s in pairs if m is not None and s is not None]
            entry["gap"] = {
                "mean": float(np.mean(diffs)) if diffs else None,
                "ci95": t_interval(diffs),
                "values": diffs,
                "n": len(diffs),
            }
        summary[name] = entry
    return summary


def _per_metric(records: list[dict[str, float | None]], metrics: Sequence[str]) -> dict[str, Any]:
    out = {}
    for m in metrics:
        values = [v for r in records if (v := r[m]) is not None]
        out[m] = {"mean": float(np.mean(values)) if values else None, "ci95": t_interval(values), "values": values}
    return out


def make_accelerator(cfg: RunConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    acc = Accelerator(
        mixed_precision="bf16" if cfg.bf16 else "no",
        # split_batches: batch_size is global, so N processes see the same batches as one; the
        # seedable sampler orders epoch e by (job seed + e) alike on one process or many.
        # Gradient accumulation is the runner's (windows that end with each epoch, no_sync).
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
        # find_unused_parameters is set per job by the runner (only MTL over several streams needs it).
        kwargs_handlers=[DistributedDataParallelKwargs()],
    )
    for size, name in ((cfg.batch_size, "batch_size"), (cfg.eval_batch_size, "eval_batch_size")):
        if size % acc.num_processes:
            raise ConfigError(f"{name}={size} must be a multiple of the {acc.num_processes} processes")
    return acc


def check_data(
    plan: Plan, tasks: dict[str, TaskSpec], cfg: RunConfig, ctx: LoadContext, acc: Any
) -> dict[str, dict[str, int]]:
    """Load every split once before any training; return rows per stream and split.

    Raises ``DataError`` naming task and split when a task has no labelled row in its train or
    dev split (after the ``max_*_examples`` slice): such a task cannot be trained or selected.
    A task without labelled test rows is reported on dev.
    """
    from harness.data.streams import is_labelled, make_streams, stream_split

    rows: dict[str, dict[str, int]] = {}
    with acc.main_process_first():
        for stream in make_streams([tasks[t] for t in plan.tasks]):
            rows[stream.key] = {}
            for split in ("train", "dev", "test"):
                key, limit = cfg.example_limit(split)
                dataset = stream_split(stream, split, ctx, limit)
                if dataset is None:
                    continue
                rows[stream.key][split] = len(dataset)
                for k, task in enumerate(stream.tasks):
                    if split != "test" and not is_labelled(task, dataset[f"label_{k}"]).any():
                        sliced = f" (among the {limit} rows drawn by {key}={limit})" if limit == len(dataset) else ""
                        raise DataError(
                            f"task {task.name!r} has no labelled row in split {split!r}{sliced}; it cannot be "
                            "trained or selected: label some rows, or leave the task out of --tasks"
                        )
    return rows


def job_units(job: Job, tasks: dict[str, TaskSpec], rows: dict[str, dict[str, int]], cfg: RunConfig) -> float:
    """Estimated cost of a job (progress and remaining time): examples processed, training counted thrice."""
    from harness.data.streams import make_streams
    from harness.training.progress import EVAL_UNITS, TRAIN_UNITS

    total = 0.0
    for stream in make_streams([tasks[t] for t in job.tasks]):
        sizes = rows.get(stream.key, {})
        total += TRAIN_UNITS * sizes.get("train", 0) + EVAL_UNITS * (sizes.get("dev", 0) + sizes.get("test", 0))
    return total * cfg.epochs


def run_experiment(
    cfg: RunConfig,
    manager: PluginManager,
    registries: Registries,
    plan: Plan,
    ctx: LoadContext,
    acc: Any,
    run_dir: Path,
    resume: bool,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """Run every job of the plan (skipping finished ones) and write results.json.

    The run directory must have been prepared (``rundir.prepare``) by the caller.
    """
    from harness.protocol import rundir
    from harness.training.progress import JobProgress, RunProgress
    from harness.training.runner import run_job

    tasks = {name: registries.tasks.get(name) for name in plan.tasks}
    rows = check_data(plan, tasks, cfg, ctx, acc)
    if acc.is_main_process:
        manager.notify("run_started", run_dir=str(run_dir), config=run_info, tasks=list(plan.tasks))
    results: dict[str, dict[str, Any]] = {}
    jobs = plan.jobs()
    units = [job_units(job, tasks, rows, cfg) for job in jobs]
    progress = RunProgress(len(jobs)) if acc.is_main_process else None
    try:
        if progress is not None:
            progress.plan(units)
        for i, (job, cost) in enumerate(zip(jobs, units, strict=True), 1):
            key = job.key(cfg.training_hash())
            job_dir = run_dir / "jobs" / key
            done = job_dir / "result.json"
            if done.exists():
                log.info("[%d/%d] %s: finished before, reusing %s", i, len(jobs), job.describe(), done)
                fix = f"delete {job_dir} to train that job again"
                results[key] = rundir.read_json(done, ("kind", "tasks", "seed", "splits", "metrics", "history"), fix)
                if progress is not None:
                    progress.skip_job(cost)
                continue
            log.info("[%d/%d] %s", i, len(jobs), job.describe())
            if progress is not None:
                progress.start_job(f"[{i}/{len(jobs)}] {job.describe()}", cost, cfg.epochs)
            job_tasks = [tasks[t] for t in job.tasks]
            result = run_job(
                job, job_tasks, registries.metrics, cfg, ctx, acc, job_dir, resume, progress or JobProgress()
            )
            if acc.is_main_process:
                rundir.write_json(done, result)
                shutil.rmtree(job_dir / "state", ignore_errors=True)  # only needed to resume an unfinished job
            acc.wait_for_everyone()
            if progress is not None:
                progress.finish_job()
            results[key] = result
    finally:
        if progress is not None:
            progress.close()
    summary = summarise(results, plan, tasks, registries)
    output = {
        "plan": {"tasks": plan.tasks, "group": plan.group, "seeds": plan.seeds},
        # how an MTL job combines its heads' losses, and how long jobs train
        "training": {"loss_weighting": "equal", "epochs": cfg.epochs, "patience": cfg.patience},
        "tasks": summary,
        "jobs": {k: {"kind": r["kind"], "tasks": r["tasks"], "seed": r["seed"]} for k, r in sorted(results.items())},
        "rows": rows,
    }
    if acc.is_main_process:
        rundir.write_json(run_dir / "results.json", output)
        rundir.write_manifest(run_dir, manager, acc, cfg, results)
        manager.notify("run_finished", run_dir=str(run_dir), results=output)
    acc.wait_for_everyone()
    acc.end_training()
    return output
