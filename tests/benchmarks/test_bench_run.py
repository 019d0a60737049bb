"""Benchmark figures: bytes written and peak resident memory of whole ``harness run`` runs.

Neither depends on the machine's load, so they are single measurements (the table's figures),
taken in a child process that reads ``getrusage`` of itself and its children after the run:
bytes written = ``ru_oublock`` x 512 (what ``/usr/bin/time -f %O`` counts: bytes the process
caused to be written to storage, also of files deleted later, such as a finished job's resume
state), peak memory = ``VmHWM`` (``harness.protocol.execute.peak_rss_mb``: ``ru_maxrss`` would
report pytest's own size, inherited across fork and exec). Every run has ``--job-store none`` (nothing reused) and
its own tokenization cache (``$HARNESS_CACHE``), so it writes what a first run writes.

- Always: the spine ``smoke`` profile on 3 cervical tasks (tiny model, the whole protocol: 3
  STL jobs, the untrained model, the all-task run and the groups; under a minute here).
- ``HARNESS_BENCH_MAIN=1``: the main job, ``harness run --plugin spine`` on its defaults
  (MiniLM, about half an hour here with a quiet machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[2]
MAIN = os.environ.get("HARNESS_BENCH_MAIN", "") not in ("", "0")
SMOKE_TASKS = "cervical.disc,cervical.canal_stenosis,cervical.hemangioma"

CHILD = """
import json, resource, sys, time
from harness.cli import main
from harness.protocol.execute import peak_rss_mb
start = time.perf_counter()
code = main(sys.argv[1:])
own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("USAGE " + json.dumps({
    "code": code, "seconds": time.perf_counter() - start,
    "bytes_written": (own.ru_oublock + children.ru_oublock) * 512,
    "peak_rss_mib": peak_rss_mb(),
}))
"""


def run_usage(args: list[str], cache: Path, timeout: float) -> dict[str, float]:
    """``harness <args>`` in a fresh process: its exit code, seconds, bytes written and peak RSS (KiB)."""
    env = subprocess_env(HARNESS_CACHE=str(cache))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("USAGE ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    usage = json.loads(lines[-1][len("USAGE ") :])
    assert usage["code"] == 0, done.stderr[-3000:]
    return usage


def _record(ratio, name: str, usage: dict[str, float], run: Path, setup: dict) -> None:  # type: ignore[no-untyped-def]
    kept = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
    setup = {**setup, "run_dir_mb": round(kept / 1e6, 1), "seconds": round(usage["seconds"])}
    written = usage["bytes_written"] / 1e6
    # Writes proportionate to what the run keeps: resume state only while a job is unfinished.
    limit = round(max(2.0 * kept / 1e6, kept / 1e6 + 200))
    ratio.figure(f"bytes written: {name}", written, "MB", limit=limit, setup=setup)
    ratio.figure(f"peak memory: {name}", usage["peak_rss_mib"], "MiB", setup=setup)


@pytest.mark.benchmark(group="run-cost")
def test_smoke_run_writes_about_what_it_keeps(ratio, tmp_path):
    run = tmp_path / "run"
    args = ["run", "--plugin", "spine", "--profile", "smoke", "--tasks", SMOKE_TASKS, "--output", str(run)]
    usage = ratio.once(lambda: run_usage([*args, "--job-store", "none"], tmp_path / "cache", timeout=1800))
    jobs = len(list(run.glob("jobs/*/result.json")))
    _record(ratio, f"harness run --plugin spine --profile smoke --tasks {SMOKE_TASKS}", usage, run, {"jobs": jobs})


@pytest.mark.benchmark(group="run-cost")
@pytest.mark.skipif(not MAIN, reason="the main job takes about half an hour here: HARNESS_BENCH_MAIN=1")
def test_main_job_writes_about_what_it_keeps(ratio, tmp_path):
    run = tmp_path / "run"
    args = ["run", "--plugin", "spine", "--output", str(run), "--job-store", "none"]
    usage = ratio.once(lambda: run_usage(args, tmp_path / "cache", timeout=7200))
    jobs = len(list(run.glob("jobs/*/result.json")))
    _record(ratio, "harness run --plugin spine (the main job)", usage, run, {"model": "minilm", "jobs": jobs})
