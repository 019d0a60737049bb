"""The protocol of one ``harness run``: the phased plan, run stage by stage, then gaps and scores.

Stages (``harness.protocol.plan``): STL per task (with probe-set features) -> the untrained
model's gradients and features -> the all-task MTL run (gradient and TAG observers) -> every
pair (``--pairs``) -> the predictors -> the groups the groupers propose -> per-task gaps in
every trained group -> the predictors' scores and the groupers' regret. Jobs are
content-addressed inside the run directory: a finished job is never run again (a group
proposed twice, or equal to the all-task group or a pair, is trained once), and ``--resume``
continues an unfinished one from its last saved state. Across run directories, the job store
(``harness.protocol.jobstore``) holds finished jobs: a run reuses any job another run finished.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.api import TaskSpec
from harness.core.config import RunConfig
from harness.core.plugins import PluginManager, Registries
from harness.core.trackers import run_tracking_dir, tracker_run
from harness.errors import DataError, RunError
from harness.protocol.execute import make_accelerator, remember_registries
from harness.protocol.executors import Executor, SequentialExecutor
from harness.protocol.gaps import Outcomes, gap_by_size, gap_estimate, pair_gap_matrix
from harness.protocol.jobstore import JobStore
from harness.protocol.plan import JobSpec, Plan
from harness.protocol.results import JobResult, RunResults

log = logging.getLogger("harness")

__all__ = ["check_data", "make_accelerator", "run_experiment"]


def check_data(
    plan: Plan, tasks: dict[str, TaskSpec], cfg: RunConfig, acc: Any
) -> tuple[dict[str, dict[str, int]], dict[str, Any], dict[str, str]]:
    """Load every split once before any training; return rows per stream and split, artifacts, and
    fingerprints ("<stream>/<split>" -> datasets fingerprint of the rows and label columns, after
    the ``max_*_examples`` slice: what a job over the whole stream records in ``data_fingerprints``).

    Artifacts: ``train_sizes`` (labelled training rows per task), ``input_groups`` (stream key
    per task), ``train_labels`` (training labels per task, for the label-dependence baseline).
    Raises ``DataError`` naming task and split when a task has no labelled row in its train or
    dev split (after the ``max_*_examples`` slice): such a task cannot be trained or selected.
    A task without labelled test rows is reported on dev.
    """
    from harness.data.streams import content_fingerprint, is_labelled, make_streams, stream_split

    ctx = plan.load.context()
    rows: dict[str, dict[str, int]] = {}
    sizes: dict[str, int] = {}
    groups: dict[str, str] = {}
    labels: dict[str, Any] = {}
    prints: dict[str, str] = {}
    with acc.main_process_first():
        for stream in make_streams([tasks[t] for t in plan.tasks]):
            rows[stream.key] = {}
            for split in ("train", "dev", "test"):
                key, limit = cfg.example_limit(split)
                dataset = stream_split(stream, split, ctx, limit)
                if dataset is None:
                    continue
                rows[stream.key][split] = len(dataset)
                prints[f"{stream.key}/{split}"] = content_fingerprint(dataset)
                for k, task in enumerate(stream.tasks):
                    values = dataset[f"label_{k}"]
                    labelled = is_labelled(task, values)
                    if split == "train":
                        sizes[task.name], groups[task.name] = int(labelled.sum()), stream.key
                        labels[task.name] = np.asarray(values)
                    if split != "test" and not labelled.any():
                        sliced = f" (among the {limit} rows drawn by {key}={limit})" if limit == len(dataset) else ""
                        raise DataError(
                            f"task {task.name!r} has no labelled row in split {split!r}{sliced}; it cannot be "
                            "trained or selected: label some rows, or leave the task out of --tasks"
                        )
    return rows, {"train_sizes": sizes, "input_groups": groups, "train_labels": labels}, prints


def job_store(
    plan: Plan, manager: PluginManager, registries: Registries, artifacts: dict[str, Any], prints: dict[str, str]
) -> JobStore | None:
    """The run's job store (``job_store`` config key; None when "none"), with what its keys share."""
    from harness import __version__
    from harness.protocol.jobstore import store_root
    from harness.training.model import encoder_identity

    root = store_root(plan.config.job_store)
    if root is None:
        return None

    def version(entry: Any) -> str:
        return f"{entry.plugin} {manager.versions.get(entry.plugin, 'unknown')}"

    versions: dict[str, Any] = {"harness": __version__}
    for name in plan.tasks:
        task = registries.tasks.entry(name)
        metrics = {m: version(registries.metrics.entry(m)) for m in task.value.metrics}
        versions[name] = {"version": task.value.version, "plugin": version(task), "metrics": metrics}
    encoder = encoder_identity(plan.config.model)
    return JobStore(root, prints, artifacts["input_groups"], encoder, versions)


def job_units(job: JobSpec, tasks: dict[str, TaskSpec], rows: dict[str, dict[str, int]]) -> float:
    """Estimated cost of a job (progress and remaining time): examples processed, training counted thrice."""
    from harness.data.streams import make_streams
    from harness.training.progress import EVAL_UNITS, TRAIN_UNITS

    if job.kind == "init":
        return float(EVAL_UNITS * job.config.probe_examples)
    total = 0.0
    for stream in make_streams([tasks[t] for t in job.tasks]):
        sizes = rows.get(stream.key, {})
        total += TRAIN_UNITS * sizes.get("train", 0) + EVAL_UNITS * (sizes.get("dev", 0) + sizes.get("test", 0))
    return total * job.config.epochs


def make_executor(
    cfg: RunConfig, run_dir: Path, resume: bool, registries: Any, acc: Any, units: Any, store: JobStore | None
) -> Executor:
    """The executor ``cfg.executor`` names (``check_executor`` has accepted it), using the job ``store``."""
    if cfg.executor == "local":
        from harness.protocol.pool import LocalExecutor

        return LocalExecutor(run_dir, resume, units, cfg, store)
    if cfg.executor == "ray":
        from harness.protocol.pool import RayExecutor

        return RayExecutor(run_dir, resume, units, cfg, store)
    return SequentialExecutor(run_dir, resume, registries, acc, units, cfg.job_cpus, store)


DATA_FILE = "data.json"  # in the run directory: check_data's fingerprints when the run started


def check_resumed_data(run_dir: Path, prints: Mapping[str, str], resume: bool, main_process: bool) -> None:
    """Record the run's data fingerprints, or on ``--resume`` refuse data that changed since.

    ``prints`` are ``check_data``'s fingerprints now ("<stream>/<split>" -> content hash of the
    rows and label columns). The first start writes them to ``run_dir/data.json``; a resume
    compares: an edited data file, or a plugin upgraded to build its data differently (the spine
    plugin's default corpus), would mix finished jobs trained on the old rows with new jobs on
    the new ones, and every gap between them would be silently wrong. Raises ``RunError``
    naming the stream/split. A run started before this file existed is resumed unchecked, and
    from then on recorded; a run that trained nothing yet is started anew, so its file is rewritten.
    """
    from harness.protocol.rundir import read_json, trained_anything, write_json

    path = run_dir / DATA_FILE
    if resume and path.exists() and trained_anything(run_dir):  # else the run starts anew (rundir.prepare)
        recorded = read_json(path, (), "restore it, or delete it to resume unchecked")
        changed = sorted(k for k in set(recorded) | set(prints) if recorded.get(k) != prints.get(k))
        if changed:
            raise RunError(
                f"--resume: the data of {run_dir} changed since the run started ({changed[0]}: fingerprint "
                f"{recorded.get(changed[0], 'none')} then, {prints.get(changed[0], 'none')} now; an edited data "
                "file, or a plugin that now builds its data differently); finished jobs would be mixed with jobs "
                "on other rows: restore the data, or start a new run in another --output"
            )
        return
    if main_process:
        write_json(path, dict(sorted(prints.items())))


def run_experiment(
    plan: Plan,
    manager: PluginManager,
    registries: Registries,
    run_dir: Path,
    resume: bool,
    run_info: dict[str, Any],
) -> dict[str, Any]:
    """Run every stage of the plan (skipping finished jobs) and write results.json; return its JSON form.

    The run directory must have been prepared (``rundir.prepare``) by the caller. With
    ``report_to``, the run's values (``RunResults.scalars``) go to the tracker run ``run``.
    """
    from harness.protocol.science import (
        compute_predictors,
        group_results,
        propose_groups,
        score_predictors,
    )

    cfg = plan.config
    # this process's view of the launch (rank, main process, barriers), and the run's trackers
    acc = make_accelerator(cfg, run_tracking_dir(run_dir, cfg.report_to))
    remember_registries(plan.plugins, registries)
    tasks = {name: registries.tasks.get(name) for name in plan.tasks}
    rows, artifacts, prints = check_data(plan, tasks, cfg, acc)
    check_resumed_data(run_dir, prints, resume, acc.is_main_process)
    store = job_store(plan, manager, registries, artifacts, prints)
    if acc.is_main_process:
        manager.notify("run_started", run_dir=str(run_dir), config=run_info, tasks=list(plan.tasks))
    primary = {
        t: (tasks[t].metrics[0], registries.metrics.get(tasks[t].metrics[0]).higher_is_better) for t in plan.tasks
    }
    executor = make_executor(cfg, run_dir, resume, registries, acc, lambda job: job_units(job, tasks, rows), store)
    try:
        # stl, init, all and pairs need nothing from each other: one batch; the groups need the predictors
        first = [(stage, job) for stage in ("stl", "init", "all", "pairs") for job in plan.stage_jobs(stage)]
        results = executor.run(first)
        executor.check()
        outcomes = Outcomes(results)
        G = pair_gap_matrix(plan.tasks, plan.seeds, outcomes, primary) if "pairs" in plan.stages else None
        artifacts.update(_artifacts(plan, results, run_dir))
        predictors = compute_predictors(plan, tasks, registries, artifacts)
        matrices = {name: p.matrix for name, p in predictors.items() if p.matrix is not None}
        proposals, failures = propose_groups(plan, tasks, registries, matrices, G)
        check_groupers_ran(plan, predictors, failures, run_dir)
        new_groups = [g for g in _groups_of(proposals) if not outcomes.trained(g)]
        results.update(executor.run([("groups", job) for job in plan.stage_jobs("groups", new_groups)]))
        executor.check()
    finally:
        executor.close()
    outcomes = Outcomes(results)
    summary = summarise(plan, tasks, registries, outcomes)
    groups = []
    for key, order in sorted(outcomes.order.items(), key=lambda kv: (len(kv[1]), kv[1])):
        sources = [name for name, part in proposals.items() if part and any(frozenset(g) == key for g in part)]
        if frozenset(plan.group) == key and "all" in plan.stages:
            sources.insert(0, "all-task run")
        if len(order) == 2 and "pairs" in plan.stages:
            sources.append("pairs")
        gaps = {t: gap_estimate(t, order, plan.seeds, outcomes, *primary[t]).to_json() for t in order}
        seconds = float(sum(r.seconds for r in outcomes.groups[key].values()))
        groups.append({"tasks": list(order), "sources": sources, "gaps": gaps, "seconds": seconds})
    pair_seconds, estimated = pair_sweep_seconds(plan, results)
    scores = score_predictors(plan, predictors, G, groups, pair_seconds)
    scores["pair_sweep"] = {"seconds": pair_seconds, "estimated": estimated}
    groupers = group_results(plan, proposals, groups, predictors, pair_seconds, failures)
    output = RunResults(
        plan=plan.to_dict(),
        # how an MTL job combines its heads' losses, and how long jobs train
        training={"loss_weighting": "equal", "epochs": cfg.epochs, "patience": cfg.patience},
        tasks=summary,
        groups=groups,
        jobs={k: _job_entry(r, run_dir / "jobs" / k) for k, r in sorted(results.items())},
        rows=rows,
        pair_gaps=None if G is None else {"tasks": list(plan.tasks), "seeds": list(plan.seeds), "values": G.tolist()},
        predictors={name: p.to_json() for name, p in predictors.items()},
        scores=scores,
        groupers={name: g.to_json() for name, g in groupers.items()},
        gap_by_size=gap_by_size(groups),
    ).to_json()
    if acc.is_main_process:
        write_record(run_dir, output, manager, acc, cfg, results)
        manager.notify("run_finished", run_dir=str(run_dir), results=output)
    acc.wait_for_everyone()
    with tracker_run(acc, "run") as track:
        if track:
            acc.log(RunResults.from_json(output).scalars(), step=0)
    acc.end_training()
    return output


def write_record(
    run_dir: Path, output: dict[str, Any], manager: PluginManager, acc: Any, cfg: RunConfig, results: Any
) -> None:
    """Write the run's record, ``manifest.json`` and ``results.json``, both or neither: a write that fails
    (a full disk) removes the other and raises ``RunError`` saying how to finish the run (its jobs are kept)."""
    from harness.errors import RunError
    from harness.protocol import rundir

    try:
        rundir.write_manifest(run_dir, manager, acc, cfg, {k: r.to_json() for k, r in results.items()})
        rundir.write_json(run_dir / "results.json", output)
    except RunError as exc:
        (run_dir / "manifest.json").unlink(missing_ok=True)
        raise RunError(f"{exc}, then continue with --output {run_dir} --resume (finished jobs are kept)") from None


def check_groupers_ran(plan: Plan, predictors: Mapping[str, Any], failures: Mapping[str, str], run_dir: Path) -> None:
    """``RunError`` (one line) when a grouper of the run failed: it raised or returned no partition of the
    tasks, or the predictor it groups by failed by its plugin's fault (``science.is_fault``: raised, a
    wrong shape, NaN for every pair, ...).

    The run stops before its groups stage and writes no results; its finished jobs are kept, so a
    ``--resume`` after the fix trains only what is missing. A grouper skipped because its input is
    missing (a predictor's artifacts the chosen stages do not produce, a predictor undefined on these
    inputs, ``--pairs``) is not a failure: it is logged, as before.
    """
    from harness.errors import RunError
    from harness.protocol.science import is_fault, parse_grouper

    then = f"then continue with --output {run_dir} --resume (finished jobs are kept)"
    for text in plan.groupers:
        if text in failures:
            raise RunError(f"{failures[text]}; fix the grouper, or leave it out of --groupers, {then}")
        _, arg = parse_grouper(text)
        p = predictors.get(arg) if arg else None
        if p is not None and is_fault(p):
            raise RunError(
                f"--groupers {text}: predictor {arg!r} has no matrix ({p.error}); fix the predictor, or group "
                f"by another one, {then}"
            )


def _job_entry(r: JobResult, job_dir: Path) -> dict[str, Any]:
    """results.json's line for one job; ``reused_from``: the job store entry it was reused from."""
    from harness.protocol.jobstore import reused_from

    entry: dict[str, Any] = {"kind": r.kind, "tasks": r.tasks, "seed": r.seed, "seconds": r.seconds}
    source = reused_from(job_dir)
    if source is not None:
        entry["reused_from"] = source
    return entry


def pair_sweep_seconds(plan: Plan, results: Mapping[str, JobResult]) -> tuple[float, bool]:
    """Seconds of the full pairwise sweep (every pair x seed): measured with --pairs, else estimated.

    The estimate is the number of pair jobs times the mean seconds of the run's STL jobs (a
    pair job trains on the union of two tasks' rows: one stream's rows for tasks sharing inputs,
    as an STL job does; more for tasks on different inputs, so the estimate is a lower bound).
    """
    if "pairs" in plan.stages:
        pairs = {frozenset(p) for p in itertools.combinations(plan.tasks, 2)}
        measured = [r.seconds for r in results.values() if r.kind == "mtl" and frozenset(r.tasks) in pairs]
        return float(sum(measured)), False
    stl = [r.seconds for r in results.values() if r.kind == "stl"]
    n_pairs = len(plan.tasks) * (len(plan.tasks) - 1) // 2 * len(plan.seeds)
    return (float(np.mean(stl)) * n_pairs if stl else 0.0), True


def _groups_of(proposals: Mapping[str, list[list[str]] | None]) -> list[tuple[str, ...]]:
    """Every distinct group of two or more tasks the groupers proposed, in first-seen order."""
    seen: dict[frozenset[str], tuple[str, ...]] = {}
    for partition in proposals.values():
        for group in partition or []:
            if len(group) > 1:
                seen.setdefault(frozenset(group), tuple(group))
    return list(seen.values())


def _artifacts(plan: Plan, results: Mapping[str, JobResult], run_dir: Path) -> dict[str, Any]:
    """The measurements predictors read: STL features, the untrained model's, gradients, observers."""
    from harness.protocol.execute import FEATURES_FILE

    def load(r: JobResult) -> np.ndarray:
        path = run_dir / "jobs" / _key(results, r) / (r.features or FEATURES_FILE)
        try:
            return np.load(path, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError, EOFError) as exc:  # truncated, not .npy, an object array (never unpickled)
            from harness.errors import RunError

            raise RunError(
                f"{path}: the job's features are damaged ({type(exc).__name__}: {str(exc)[:120]}); delete "
                f"{path.parent} and continue with --resume to train that job again"
            ) from None

    out: dict[str, Any] = {"seed": plan.seeds[0], "seeds": list(plan.seeds), "costs": {}}
    by_seed = sorted(results.values(), key=lambda r: (r.seed, r.kind, r.tasks))
    features: dict[str, list[np.ndarray]] = {}
    costs = {"features": 0.0, "init_gradients": 0.0, "training": 0.0}
    for r in by_seed:
        if r.kind == "stl" and r.features:
            features.setdefault(r.tasks[0], []).append(load(r))
            costs["features"] += r.measure_seconds.get("features", 0.0)
        elif r.kind == "init":
            out.setdefault("init_features", []).append(load(r))
            out.setdefault("init_gradients", []).append(r.observations.get("init"))
            costs["init_gradients"] += r.measure_seconds.get("init", 0.0)
            costs["features"] += r.measure_seconds.get("features", 0.0)
        elif r.kind == "mtl" and r.observations and tuple(r.tasks) == plan.group:
            state = next(iter(r.observations.values()))
            out.setdefault("training", []).append({**state, **(state.get("mean") or {})})
            costs["training"] += r.measure_seconds.get("observers", 0.0)
    if features:
        out["features"] = features
        depth = next(iter(features.values()))[0].shape[0]  # embeddings + every transformer layer
        out["layers"] = ["embeddings", *(f"layer.{k}" for k in range(depth - 1))]  # as the gradients name them
    out["costs"] = costs
    return out


def _key(results: Mapping[str, JobResult], r: JobResult) -> str:
    return next(k for k, v in results.items() if v is r)


def summarise(plan: Plan, tasks: dict[str, TaskSpec], registries: Registries, outcomes: Outcomes) -> dict[str, Any]:
    """Per task: STL metrics over seeds, and MTL metrics and the gap in the all-task group."""
    from harness.protocol.gaps import t_interval

    summary: dict[str, Any] = {}
    for name in plan.tasks:
        task = tasks[name]
        primary = task.metrics[0]
        higher = registries.metrics.get(primary).higher_is_better
        stl = [outcomes.stl[(name, s)] for s in plan.seeds]
        entry: dict[str, Any] = {
            "primary": primary,
            "higher_is_better": higher,
            "directions": {m: registries.metrics.get(m).higher_is_better for m in task.metrics},
            "version": task.version,
            "split": stl[0].splits[name],
            "stl": _per_metric([r.metrics[name] for r in stl], task.metrics, t_interval),
            "best_epochs": {"stl": [r.best_epoch for r in stl]},  # per seed: is a model still improving?
        }
        if stl[0].thresholds and name in stl[0].thresholds["values"]:
            entry["thresholds"] = stl[0].thresholds["mode"]  # multi-label decision thresholds: fixed | tuned
        mtl_runs = outcomes.groups.get(frozenset(plan.group), {})
        if name in plan.group and mtl_runs:
            mtl = [mtl_runs[s] for s in plan.seeds if s in mtl_runs]
            entry["mtl"] = _per_metric([r.metrics[name] for r in mtl], task.metrics, t_interval)
            entry["best_epochs"]["mtl"] = [r.best_epoch for r in mtl]
            est = gap_estimate(name, plan.group, plan.seeds, outcomes, primary, higher)
            entry["gap"] = {"mean": est.mean, "ci95": est.ci95, "values": est.values, "n": est.n}
        summary[name] = entry
    return summary


def _per_metric(records: list[dict[str, float | None]], metrics: Any, interval: Any) -> dict[str, Any]:
    out = {}
    for m in metrics:
        values = [v for r in records if (v := r[m]) is not None]
        out[m] = {"mean": float(np.mean(values)) if values else None, "ci95": interval(values), "values": values}
    return out
