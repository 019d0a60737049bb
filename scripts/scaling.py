"""Cost of the protocol's parts against the number of tasks T, from one run per T.

    python scripts/scaling.py run OUT [--max-tasks 8] [--set KEY=VALUE ...]   # runs into OUT/T2 ... OUT/T8
    python scripts/scaling.py report OUT [--svg docs/scaling.svg]             # Markdown table, SVG plot

``run`` trains, for T = 2 ... max, the first T cervical tasks of the spine plugin (one input
group: every pair and the all-task group are shared-input MTL) with
``harness run --plugin spine --profile smoke --pairs --stages stl,init,all,pairs --job-store none
--set job_cpus=1`` (one seed, the tiny model, one torch thread per job). ``report`` reads each
run's ``results.json`` and gives, per T, the seconds of:

- STL: the T single-task jobs (grows as T);
- pairs: the T(T-1)/2 pair jobs (grows as T^2);
- all-task MTL: the one shared-input job over all T tasks (about flat: one encoder pass per batch
  serves every head; its step observers for gradient alignment and TAG grow with T);
- the predictors' recorded costs (``cka_linear``: probe features in every STL job plus the CKA;
  ``grad_cosine_init``: the untrained model's gradients; ``tag``: TAG and gradient alignment
  measured during the all-task job, included in that job's seconds too).

A part of several jobs costs its job count times their median job, leaving out the run's first
job when its kind has others: it also pays the process's one-off start-up (imports, the first
model build: 5-17 s here), which is no cost of T (the first job: the earliest start, its
``result.json``'s time minus its seconds). Each cost is also given in units of the run's median
STL job, a ratio of two measurements of one run, which other load on the machine moves less
than the seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import median

PREDICTORS = ("cka_linear", "grad_cosine_init", "tag")
COLUMNS = ("stl", "pairs", "all", *PREDICTORS)
LABELS = {
    "stl": "STL (T jobs)",
    "pairs": "all pairs (T(T-1)/2 jobs)",
    "all": "all-task MTL (1 job)",
    "cka_linear": "predictor cka_linear",
    "grad_cosine_init": "predictor grad_cosine_init",
    "tag": "predictor tag",
}


def cervical_tasks() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "harness", "list", "--plugin", "spine", "--no-sizes", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(t["name"] for t in json.loads(out)["tasks"] if t["name"].startswith("cervical."))


def run(out: Path, max_tasks: int, sets: list[str]) -> None:
    tasks = cervical_tasks()
    for size in range(2, max_tasks + 1):
        args = ["run", "--plugin", "spine", "--profile", "smoke", "--tasks", ",".join(tasks[:size]), "--pairs"]
        args += ["--stages", "stl,init,all,pairs", "--job-store", "none", "--set", "job_cpus=1"]
        args += [x for s in sets for x in ("--set", s)]
        print(f"T={size}: harness {' '.join(args)}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "harness", *args, "--output", str(out / f"T{size}")], check=True)


def costs(run_dir: Path) -> dict[str, float]:
    """Seconds per part of one run (see the module docstring), its task count ``T`` and median STL job."""
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    size = len(results["plan"]["tasks"])
    kinds: dict[str, list[tuple[float, float]]] = {}  # part -> (start, seconds) of its jobs
    for key, job in results["jobs"].items():
        record = json.loads((run_dir / "jobs" / key / "result.json").read_text(encoding="utf-8"))
        observed = "observers" in record.get("measure_seconds", {})  # the all-task job (also at T = 2)
        everything = job["kind"] == "mtl" and (observed or len(job["tasks"]) == size > 2)
        part = "all" if everything else "pairs" if job["kind"] == "mtl" else job["kind"]
        start = (run_dir / "jobs" / key / "result.json").stat().st_mtime - job["seconds"]
        kinds.setdefault(part, []).append((start, job["seconds"]))
    first = min(kinds, key=lambda part: min(kinds[part]))
    if len(kinds[first]) > 1:
        kinds[first].remove(min(kinds[first]))
    job = {part: median(seconds for _, seconds in jobs) for part, jobs in kinds.items()}
    row = {"T": float(size), "stl_job": job["stl"], "all": job["all"]}
    row.update({"stl": size * job["stl"], "pairs": size * (size - 1) // 2 * job["pairs"]})
    for name in PREDICTORS:
        row[name] = results["predictors"][name]["seconds"]
    return row


def markdown(rows: list[dict[str, float]]) -> str:
    head = "| T | " + " | ".join(LABELS[c] for c in COLUMNS) + " |"
    lines = [head, "| ---: |" + " ---: |" * len(COLUMNS)]
    for row in rows:
        cells = [f"{row[c]:.1f} s ({row[c] / row['stl_job']:.2f})" for c in COLUMNS]
        lines.append(f"| {row['T']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, float]], path: Path) -> None:
    """Seconds against T (log scale), one line per part, to an SVG file (the leaderboard's style)."""
    import matplotlib
    from matplotlib.figure import Figure

    from harness.leaderboard.figures import STYLE, to_svg

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(6.0, 3.6), layout="constrained")
        ax = fig.add_subplot()
        sizes = [row["T"] for row in rows]
        for column, style in zip(COLUMNS, ("o-", "s-", "^-", "d--", "v--", "x--"), strict=True):
            ax.plot(sizes, [row[column] for row in rows], style, label=LABELS[column], markersize=4)
        ax.set_yscale("log")
        ax.set_xlabel("tasks T (cervical, one input group)")
        ax.set_ylabel("seconds (1 seed, tiny model, 1 thread)")
        ax.set_title("Cost of the protocol's parts against the number of tasks")
        ax.legend(frameon=False, fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_svg(fig, "scaling", "Cost of the protocol's parts against the number of tasks"), "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="one run per T into OUT/T2 ... OUT/T<max>")
    run_p.add_argument("out", type=Path)
    run_p.add_argument("--max-tasks", type=int, default=8)
    run_p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to harness run")
    report_p = sub.add_parser("report", help="the Markdown table (stdout) and the SVG plot")
    report_p.add_argument("out", type=Path)
    report_p.add_argument("--svg", type=Path, default=Path("docs/scaling.svg"))
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.max_tasks, args.set)
        return
    dirs = sorted(args.out.glob("T*/results.json"), key=lambda p: int(p.parent.name[1:]))
    rows = [costs(p.parent) for p in dirs]
    print(markdown(rows), end="")
    plot(rows, args.svg)
    print(f"plot: {args.svg}", file=sys.stderr)


if __name__ == "__main__":
    main()
