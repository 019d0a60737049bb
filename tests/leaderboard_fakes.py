"""Leaderboard records built by hand (no training): what the gate and store tests compare.

``python tests/leaderboard_fakes.py write DIR N TAG`` writes N records to the leaderboard DIR
(the concurrency and kill tests start it as a subprocess).
"""

from __future__ import annotations

import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.leaderboard.records import (
    Cost,
    Gap,
    Interval,
    ModelRecord,
    PredictorRecord,
    Provenance,
    ResultRow,
    RunRecord,
    ScoreRecord,
    TaskRecord,
)

COST = Cost(jobs=2, seconds=10.0, train_seconds=8.0, examples_per_second=100.0, peak_memory_mb=500.0,
            memory="process_max_rss", processes=1, device="cpu")  # fmt: skip


def _row(task: str, group: list[str], kind: str, values: list[float], metric: str = "f1_macro",
         higher: bool = True, gap: Gap | None = None, sources: tuple[str, ...] = ()) -> ResultRow:  # fmt: skip
    from harness.protocol.gaps import t_interval

    ci = t_interval(values)
    return ResultRow(
        task=task, group=group, kind=kind, metric=metric, primary=True, higher_is_better=higher, split="dev",  # type: ignore[arg-type]
        seeds=list(range(len(values))), values=list(values), mean=statistics.fmean(values),
        std=statistics.stdev(values) if len(values) > 1 else None,
        ci95=Interval(low=ci[0], high=ci[1]) if ci else None, gap=gap, sources=list(sources), cost=COST,
    )  # fmt: skip


def make_record(
    stl: dict[str, list[float]],
    mtl: dict[str, list[float]] | None = None,
    *,
    run_id: str = "run-a",
    fingerprints: dict[str, str] | None = None,
    higher: bool = True,
    metric: str = "f1_macro",
    rho: float = 0.5,
    rho_ci: tuple[float, float] = (0.1, 0.8),
    created: datetime | None = None,
    model: str = "tiny",
    results_sha: str | None = None,
    plugins: tuple[str, ...] = ("spine",),
) -> RunRecord:
    """A record of tasks ``stl`` (per-seed values of each task alone) and, if given, ``mtl``
    (per-seed values of each task in the all-task group)."""
    names = list(stl)
    fingerprints = fingerprints or {}
    tasks = [
        TaskRecord(
            name=t,
            version="1",
            data_fingerprint=fingerprints.get(t, f"fp-{t}"),
            split_fingerprints={},
            split="dev",
            primary_metric=metric,
            higher_is_better=higher,
            metrics={metric: higher},
        )  # fmt: skip
        for t in names
    ]
    rows = [_row(t, [t], "stl", v, metric, higher) for t, v in stl.items()]
    for t, v in (mtl or {}).items():
        sign = 1 if higher else -1
        gaps = [sign * (a - b) for a, b in zip(v, stl[t], strict=True)]
        gap = Gap(mean=statistics.fmean(gaps), ci95=None, values=gaps, seeds=list(range(len(gaps))))
        rows.append(_row(t, names, "mtl", v, metric, higher, gap, ("all-task run",)))
    predictor = PredictorRecord(
        name="cka_linear", tasks=names, matrix=[[1.0] * len(names) for _ in names], symmetric=True, seconds=1.0,
        pairs=ScoreRecord(value=rho, ci95=Interval(low=rho_ci[0], high=rho_ci[1]), p_value=0.2, n=6),
    )  # fmt: skip
    return RunRecord(
        provenance=Provenance(
            run_id=run_id,
            finished=created or datetime(2026, 11, 30, tzinfo=UTC),
            recorded=datetime(2026, 11, 30, tzinfo=UTC),
            harness_version="0.1.0",
            git_revision=None,
            python="3.11",
            libraries={},
            plugins={p: "0.1.0" for p in plugins},
            selected_plugins=list(plugins),
            profile="science-smoke",
            config={"model": model},
            config_hash="h1",
            run_sha256=results_sha or run_id,
        ),  # fmt: skip
        model=ModelRecord(name=model, weights_sha256="w1"),
        seeds=list(range(len(next(iter(stl.values()))))),
        tasks=tasks,
        results=rows,
        predictors=[predictor],
        cost=COST,
    )


def write_many(directory: str, count: int, tag: str) -> list[str]:
    from harness.leaderboard.store import write_record

    paths = []
    for i in range(count):
        record = make_record({"a": [0.5, 0.6], "b": [0.7, 0.8]}, run_id=f"{tag}-{i:04d}", results_sha=f"{tag}-{i}")
        paths.append(str(write_record(Path(directory), record)))
    return paths


def main(argv: list[str]) -> Any:
    if argv[0] == "write":
        write_many(argv[1], int(argv[2]), argv[3])


if __name__ == "__main__":
    main(sys.argv[1:])
