"""Estimated wall time of a run's plan on P devices, from the job times a finished run measured.

    python scripts/plan_walltime.py RUN_DIR [--tasks 16] [--seeds 3] [--groups 4] [--devices 1,8,64]

The plan of T tasks and S seeds has T·S STL jobs, S init jobs, S all-task jobs, T(T−1)/2·S pair
jobs (with --pairs) and g·S group jobs (g: the new groups the groupers propose). Each kind's job
time is the mean measured in RUN_DIR (one device = one job at a time, at the measured speed).
The first batch (stl, init, all, pairs: independent) and the groups batch (after the
predictors) are each list-scheduled longest-first onto P devices (Graham's LPT: within 4/3 of
the optimum); the wall time is batch 1 + the predictors + batch 2. The predictors' time is
their own compute measured in RUN_DIR (without the in-job measurements they reuse), scaled by
the number of task pairs, T(T−1) over the measured run's. The lower bound of each batch is
max(total / P, longest job): its critical path.
"""

from __future__ import annotations

import argparse
import heapq
import json
from pathlib import Path
from statistics import mean


def kind_seconds(results: dict) -> dict[str, float]:
    """Mean seconds per job kind: stl, init, all (the largest group), pair, group."""
    jobs = list(results["jobs"].values())
    largest = max(len(j["tasks"]) for j in jobs)
    kinds: dict[str, list[float]] = {}
    for job in jobs:
        size = len(job["tasks"])
        kind = job["kind"] if job["kind"] != "mtl" else "all" if size == largest else "pair" if size == 2 else "group"
        kinds.setdefault(kind, []).append(job["seconds"])
    out = {k: mean(v) for k, v in kinds.items()}
    out.setdefault("pair", out.get("group", out["stl"]))
    out.setdefault("group", out.get("pair", out["stl"]))
    return out


def predictor_compute(results: dict, run_dir: Path) -> float:
    """Seconds the predictors took on the main process, after the first batch.

    A predictor's recorded ``seconds`` is its cost share: its own compute plus the measurements
    it reuses, which ran inside the jobs (``harness/protocol/science.py``) and are in the jobs'
    times already. Those are subtracted here, from each job's ``measure_seconds``, as
    ``harness/protocol/experiment.py`` sums them.
    """
    spent = {"features": 0.0, "init_gradients": 0.0, "training": 0.0}
    largest = max(len(j["tasks"]) for j in results["jobs"].values())
    for key, job in results["jobs"].items():
        measured = json.loads((run_dir / "jobs" / key / "result.json").read_text()).get("measure_seconds", {})
        if job["kind"] in ("stl", "init"):
            spent["features"] += measured.get("features", 0.0)
        if job["kind"] == "init":
            spent["init_gradients"] += measured.get("init", 0.0)
        if job["kind"] == "mtl" and len(job["tasks"]) == largest:
            spent["training"] += measured.get("observers", 0.0)
    own = 0.0
    for p in results["predictors"].values():
        reused = sum(spent.get(n, 0.0) for n in p.get("needs", []))
        own += max(0.0, (p.get("seconds") or 0.0) - reused) if p.get("seconds") else 0.0
    return own


def schedule(durations: list[float], devices: int) -> float:
    """Makespan of longest-first list scheduling of ``durations`` on ``devices``."""
    free = [0.0] * devices if durations else [0.0]
    for d in sorted(durations, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + d)
    return max(free)


def critical(durations: list[float], devices: int) -> float:
    """No schedule of ``durations`` on ``devices`` is shorter: the mean load or the longest job."""
    return max(sum(durations) / devices, max(durations)) if durations else 0.0


def plan_seconds(seconds: dict[str, float], tasks: int, seeds: int, groups: int, devices: int, predictors: float):
    first = (
        [seconds["stl"]] * tasks * seeds
        + [seconds.get("init", 0.0)] * seeds
        + [seconds["all"]] * seeds
        + [seconds["pair"]] * (tasks * (tasks - 1) // 2 * seeds)
    )
    second = [seconds["group"]] * groups * seeds
    wall = schedule(first, devices) + predictors + schedule(second, devices)
    bound = critical(first, devices) + predictors + critical(second, devices)
    return len(first) + len(second), wall, bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--groups", type=int, default=4, help="new groups the groupers propose (per seed)")
    parser.add_argument("--devices", default="1,8,64")
    args = parser.parse_args()
    results = json.loads((args.run_dir / "results.json").read_text())
    seconds = kind_seconds(results)
    measured_tasks = len(results["plan"]["tasks"])
    pairs_ratio = args.tasks * (args.tasks - 1) / max(1, measured_tasks * (measured_tasks - 1))
    predictors = predictor_compute(results, args.run_dir) * pairs_ratio
    print("measured mean seconds per job:", {k: round(v, 1) for k, v in sorted(seconds.items())})
    print(f"predictors: {predictors:.1f} s ({measured_tasks} tasks measured, scaled to {args.tasks})")
    print("| devices | jobs | wall time (LPT schedule) | lower bound |")
    print("| ---: | ---: | ---: | ---: |")
    for devices in (int(d) for d in args.devices.split(",")):
        jobs, wall, bound = plan_seconds(seconds, args.tasks, args.seeds, args.groups, devices, predictors)
        print(f"| {devices} | {jobs} | {wall / 60:.1f} min | {bound / 60:.1f} min |")


if __name__ == "__main__":
    main()
