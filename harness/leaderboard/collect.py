"""A run directory -> a ``RunRecord`` (what ``harness run --leaderboard`` and ``baseline --from`` record).

Reads ``config.json``, ``manifest.json``, ``results.json`` and every ``jobs/<key>/result.json``
of a finished run; nothing is recomputed but the per-group summaries (mean, seed standard
deviation, Student-t interval) and the cost sums.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import LeaderboardError, RunError
from harness.leaderboard.records import (
    Cost,
    Gap,
    GrouperRecord,
    Interval,
    ModelRecord,
    PairGaps,
    PredictorRecord,
    Provenance,
    ResultRow,
    RunRecord,
    ScoreRecord,
    TaskRecord,
    fingerprint,
    finite_or_none,
)
from harness.protocol.results import JobResult, RunResults


def record_from_run(run_dir: Path, run_id: str | None = None) -> RunRecord:
    """The leaderboard record of the finished run in ``run_dir``.

    Raises ``LeaderboardError`` when ``run_dir`` is not a finished run of this harness version
    (no ``results.json``, a job result missing, another results version).
    """
    from harness.protocol.rundir import read_json

    run_dir = Path(run_dir)
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        started = (run_dir / "config.json").is_file()
        fix = "finish it with `harness run ... --output DIR --resume`" if started else "name a run directory"
        raise LeaderboardError(f"{run_dir}: no results.json: not a finished harness run ({fix})")
    fix = "record a finished run of this harness version"
    try:
        info = read_json(run_dir / "config.json", ("config", "profile"), fix)
        manifest = read_json(run_dir / "manifest.json", ("harness", "encoder", "hardware"), fix)
        results = RunResults.from_json(read_json(results_path, ("version",), fix), results_path)
        jobs = {key: JobResult.read(run_dir / "jobs" / key / "result.json") for key in results.jobs}
    except RunError as exc:
        raise LeaderboardError(str(exc)) from None
    finished = datetime.fromtimestamp(int(results_path.stat().st_mtime), UTC)
    label = "-".join(info.get("plugins") or []) or "run"
    sha = run_sha256(run_dir, list(results.jobs))
    run_id = f"{finished:%Y%m%dT%H%M%SZ}-{label}-{sha[:8]}" if run_id is None else check_run_id(run_id)
    tasks = _tasks(results, jobs)
    return RunRecord(
        provenance=Provenance(
            run_id=run_id,
            finished=finished,
            recorded=datetime.now(UTC).replace(microsecond=0),
            harness_version=manifest["harness"],
            git_revision=manifest.get("git_revision"),
            python=manifest.get("python", ""),
            libraries=manifest.get("libraries", {}),
            plugins=manifest.get("plugins", {}),
            selected_plugins=list(info.get("plugins") or []),
            profile=info["profile"],
            config={k: v for k, v in info["config"].items() if k not in UNRECORDED_KEYS},
            config_hash=manifest.get("config_hash", ""),
            run_sha256=sha,
        ),
        model=ModelRecord(
            name=str(info["config"].get("model", "")),
            weights_sha256=manifest["encoder"].get("files_sha256"),
            identity=manifest["encoder"],
        ),
        seeds=list(results.plan["seeds"]),
        tasks=tasks,
        results=_rows(results, jobs, {t.name: t for t in tasks}),
        predictors=_predictors(results),
        noise_ceiling=_score(results.scores.get("noise_ceiling")),
        groupers=[GrouperRecord(**g.__dict__) for g in results.grouper_results().values()],
        pair_gaps=_pair_gaps(results.pair_gaps),
        gap_by_size=list(results.gap_by_size),
        cost=cost_of(list(jobs.values())),
    )


#: Config keys that say where a run reported, not what it computed: kept out of records (local paths).
UNRECORDED_KEYS = ("leaderboard", "report_to")


def run_sha256(run_dir: Path, keys: Sequence[str]) -> str:
    """sha256 over the job keys and the bytes of each job's ``result.json``.

    The run's identity on a leaderboard: a resume that trains nothing more rewrites
    ``results.json`` (its timings change) but no job result, so it is the same run.
    """
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode() + b"\0")
        digest.update(hashlib.sha256((run_dir / "jobs" / key / "result.json").read_bytes()).digest())
    return digest.hexdigest()


def check_run_id(run_id: str) -> str:
    """``run_id`` when it is a valid record id (a plain file name), else ``LeaderboardError``."""
    import re

    from harness.leaderboard.records import RUN_ID_PATTERN

    if not re.match(RUN_ID_PATTERN, run_id):
        raise LeaderboardError(
            f"--run-id {run_id!r}: a run id is 1-128 letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (it names the record's file)"
        )
    return run_id


def cost_of(jobs: Sequence[JobResult]) -> Cost:
    """Summed seconds and rows, examples per training second, the highest peak memory."""
    train = sum(j.train_seconds for j in jobs)
    examples = sum(j.train_examples for j in jobs)
    peaks = [j.peak_memory_mb for j in jobs if j.peak_memory_mb is not None]
    return Cost(
        jobs=len(jobs),
        seconds=sum(j.seconds for j in jobs),
        train_seconds=train,
        examples_per_second=examples / train if train > 0 and examples > 0 else None,
        peak_memory_mb=max(peaks) if peaks else None,
        memory=next((j.memory for j in jobs if j.memory), ""),
        processes=max((j.processes for j in jobs), default=1),
        device=next((j.device for j in jobs if j.device), ""),
    )


def _tasks(results: RunResults, jobs: dict[str, JobResult]) -> list[TaskRecord]:
    out = []
    for name, entry in results.tasks.items():
        splits: dict[str, str] = {}
        for job in jobs.values():
            if job.kind == "stl" and job.tasks == [name]:
                splits.update(job.data_fingerprints)
        primary = entry["primary"]
        out.append(
            TaskRecord(
                name=name,
                version=str(entry.get("version", "1")),
                data_fingerprint=fingerprint(splits),
                split_fingerprints=splits,
                split=entry["split"],
                primary_metric=primary,
                higher_is_better=entry["higher_is_better"],
                metrics=entry.get("directions") or {primary: entry["higher_is_better"]},
            )
        )
    return out


def _rows(results: RunResults, jobs: dict[str, JobResult], tasks: dict[str, TaskRecord]) -> list[ResultRow]:
    from harness.protocol.gaps import Outcomes, gap_estimate

    outcomes = Outcomes(jobs)
    seeds = list(results.plan["seeds"])
    rows: list[ResultRow] = []
    for name, task in tasks.items():
        stl = {s: outcomes.stl[(name, s)] for s in seeds if (name, s) in outcomes.stl}
        rows += _metric_rows(task, [name], "stl", stl, ["stl"], None)
    for group in results.groups:
        members = list(group["tasks"])
        runs = outcomes.groups.get(frozenset(members), {})
        runs = {s: runs[s] for s in seeds if s in runs}
        for name in members:
            task = tasks[name]
            est = gap_estimate(name, members, seeds, outcomes, task.primary_metric, task.higher_is_better)
            gap = Gap(mean=est.mean, ci95=_interval(est.ci95), values=est.values, seeds=est.seeds)
            rows += _metric_rows(task, members, "mtl", runs, list(group.get("sources", [])), gap)
    return rows


def _metric_rows(
    task: TaskRecord, group: list[str], kind: str, runs: dict[int, JobResult], sources: list[str], gap: Gap | None
) -> list[ResultRow]:
    from harness.protocol.gaps import t_interval

    cost = cost_of(list(runs.values()))
    rows = []
    for metric in task.metrics:
        values = [finite_or_none(r.metrics.get(task.name, {}).get(metric)) for r in runs.values()]
        known = [v for v in values if v is not None]
        rows.append(
            ResultRow(
                task=task.name,
                group=group,
                kind=kind,  # type: ignore[arg-type]
                metric=metric,
                primary=metric == task.primary_metric,
                higher_is_better=task.metrics[metric],
                split=task.split,
                seeds=list(runs),
                values=values,
                mean=statistics.fmean(known) if known else None,
                std=statistics.stdev(known) if len(known) > 1 else None,
                ci95=_interval(t_interval(known)),
                gap=gap if metric == task.primary_metric else None,
                sources=sources,
                cost=cost,
            )
        )
    return rows


def _interval(ci: Sequence[float] | None) -> Interval | None:
    if ci is None:
        return None
    low, high = (finite_or_none(v) for v in ci)
    return None if low is None or high is None else Interval(low=low, high=high)


def _score(data: dict[str, Any] | None) -> ScoreRecord | None:
    if not data or finite_or_none(data.get("value")) is None:
        return None
    low, high = data.get("ci_low"), data.get("ci_high")
    return ScoreRecord(
        value=data["value"],
        ci95=_interval((low, high)) if low is not None and high is not None else None,
        p_value=finite_or_none(data.get("p_value")),
        n=int(data.get("n", 0)),
        method=data.get("method", ""),
    )


def _predictors(results: RunResults) -> list[PredictorRecord]:
    from harness.protocol.results import nan_to_none

    scores = results.predictor_scores()
    out = []
    for name, p in results.predictor_matrices().items():
        details = p.details or {}
        per_layer, layers = details.get("per_layer"), details.get("layers") or []
        layer_tasks = details.get("per_layer_tasks", p.tasks)
        if per_layer is not None and (list(layer_tasks) != list(p.tasks) or len(per_layer) != len(layers)):
            per_layer, layers = None, []  # not in the predictor's task order: left out rather than mislabelled
        s = scores.get(name)
        detection = (s.negative_transfer or {}) if s else {}
        out.append(
            PredictorRecord(
                name=name,
                description=p.description,
                tasks=list(p.tasks),
                matrix=None if p.matrix is None else nan_to_none(p.matrix),
                symmetric=p.symmetric,
                seconds=p.seconds,
                needs=list(p.needs),
                error=p.error,
                layers=[str(x) for x in layers] if per_layer is not None else [],
                per_layer=nan_to_none(per_layer) if per_layer is not None else None,
                pairs=_score(s.pairs) if s else None,
                groups=_score(s.groups) if s else None,
                fraction_of_ceiling=finite_or_none(s.fraction_of_ceiling) if s else None,
                negative_transfer_f1=finite_or_none(detection.get("f1")),
                cost_share=finite_or_none(s.cost_share) if s else None,
                notes=list(s.notes) if s else [],
            )
        )
    return out


def _pair_gaps(data: dict[str, Any] | None) -> PairGaps | None:
    if not data:
        return None
    import warnings

    import numpy as np

    from harness.protocol.results import nan_to_none, none_to_nan

    values = none_to_nan(data["values"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair no seed measured: all-NaN mean
        mean = np.nanmean(values, axis=0) if len(values) else values
    return PairGaps(tasks=data["tasks"], seeds=data["seeds"], mean=nan_to_none(mean), values=nan_to_none(values))
