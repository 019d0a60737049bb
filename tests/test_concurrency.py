"""Several runs at once sharing the tokenization cache, the job store and the leaderboard.

Three ``harness run`` processes start together (two with the same settings, one with another
seed) on one ``HARNESS_CACHE``, one ``--job-store`` and one ``--leaderboard``; a barrier holds
each at its first tokenization until all three are there, so they tokenize the same splits at
the same time on an empty cache. Then every record, store entry and cache file must be whole:
later runs reuse them and get the same metrics as a run on a fresh cache, while ``cache gc`` and
two ``leaderboard render`` loops run beside them. Also: two runs racing for one ``--output``
(one proceeds, the other is refused in one line), and processes recording one run at once.

``HARNESS_STRESS_RUNS=6 pytest tests/test_concurrency.py`` races more runs (two per seed), by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.leaderboard.store import read_records
from harness.protocol import jobstore
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow
WORKER = str(Path(__file__).resolve().parent / "concurrency_worker.py")
TOY = ["--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl", "--set", "epochs=1"]
ONE = ["--tasks", "toy.colour,toy.score", "--profile", "smoke", "--stages", "stl", "--set", "epochs=1"]
RUNS = int(os.environ.get("HARNESS_STRESS_RUNS", "3"))
# Two runs per seed (the last one alone when RUNS is odd): each of a pair claims one of the three
# jobs and tokenizes; with more runs than jobs per seed one would wait for a job, not tokenize.
SEEDS = [i // 2 for i in range(RUNS)]


def start(mode: str, folder: Path, parties: int, args: list[str], **env: str) -> subprocess.Popen:
    """A worker process (``concurrency_worker.py``): ``harness ARGS`` behind a barrier, or in a loop."""
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, WORKER, mode, str(folder), str(parties), "--", *args]
    return subprocess.Popen(
        cmd, env=subprocess_env(HARNESS_PLUGIN_MODULES="toy", **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each process."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        out.append((p.returncode, stdout.decode(), stderr.decode()))
    return out


def notes(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def metrics(run: Path) -> dict:
    """What each job computed, by job key: test and dev metrics, training losses, data fingerprints."""
    out = {}
    for key in json.loads((run / "results.json").read_text())["jobs"]:
        job = json.loads((run / "jobs" / key / "result.json").read_text())
        out[key] = (job["metrics"], job["dev"], [h["train_loss"] for h in job["history"]], job["data_fingerprints"])
    return out


def reused(run: Path) -> dict[str, bool]:
    return {k: bool(j.get("reused_from")) for k, j in json.loads((run / "results.json").read_text())["jobs"].items()}


def arrow_files(cache: Path) -> dict[str, Path]:
    return {str(p.relative_to(cache)): p for p in sorted((cache / "tokenized").glob("*/*.arrow"))}


@pytest.fixture(scope="module")
def raced(tmp_path_factory) -> dict:
    """The runs started together on one cache, store and leaderboard, and what they printed."""
    base = tmp_path_factory.mktemp("raced")
    shared = ["--job-store", str(base / "jobs"), "--leaderboard", str(base / "lb")]
    procs = [
        start(
            "tokenize",
            base / "barrier",
            RUNS,
            ["run", *TOY, *shared, "--output", str(base / f"r{i}"), "--set", f"seed={SEEDS[i]}"],
            HARNESS_CACHE=str(base / "cache"),
        )
        for i in range(RUNS)
    ]
    return {"base": base, "done": finish(procs), "notes": notes(base / "barrier")}


def test_runs_at_once_finish_with_every_record_and_entry_whole(raced):
    base, done = raced["base"], raced["done"]
    for code, _, err in done:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err and "damaged" not in err and "incomplete" not in err
    # The race was real: every run reached its first tokenization on an empty cache, and none
    # began tokenizing before all had arrived; the runs overlapped in time.
    seen = raced["notes"]
    assert len(seen) == RUNS and all(n["cache_files"] == 0 for n in seen)
    assert max(n["arrived"] for n in seen) <= min(n["start"] for n in seen)
    assert max(n["began"] for n in seen) < min(n["ended"] for n in seen)
    # Runs with the same settings trained each job once (the others reused it) and agree; runs
    # with another seed ran other jobs.
    by_seed = {seed: [base / f"r{i}" for i in range(RUNS) if SEEDS[i] == seed] for seed in set(SEEDS)}
    for runs in by_seed.values():
        assert all(metrics(run) == metrics(runs[0]) for run in runs) and len(metrics(runs[0])) == 3
        for key in metrics(runs[0]):
            assert sum(not reused(run)[key] for run in runs) == 1, key
    keys = [set(metrics(runs[0])) for runs in by_seed.values()]
    assert len(set().union(*keys)) == 3 * len(by_seed)
    # Job store: one whole, loadable entry per (job, seed), nothing half-written left.
    entries = jobstore.list_entries(base / "jobs")
    assert len(entries) == 3 * len(by_seed) and all(
        jobstore.read_entry(base / "jobs" / e.key) is not None for e in entries
    )
    assert not list((base / "jobs" / ".tmp").iterdir())
    # Leaderboard: every record parses, one per distinct run (the same-settings runs share job
    # results, so they are one run); every run said where its record is.
    records = read_records(base / "lb")
    assert len(records) == len(by_seed) and len({r.provenance.run_sha256 for r in records}) == len(by_seed)
    said = [line for _, _, err in done for line in err.splitlines() if "on the leaderboard" in line]
    assert len(said) == RUNS and sum(line.startswith("recorded on the leaderboard") for line in said) == len(by_seed)
    assert not [p for p in (base / "lb" / "runs").iterdir() if p.name.startswith(".") and p.name != ".lock"]
    show = subprocess.run(
        [sys.executable, "-m", "harness", "leaderboard", "show", "--dir", str(base / "lb"), "--json"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert show.returncode == 0, show.stderr
    shown = {row["run_id"] for table in json.loads(show.stdout)["tables"] for row in table["rows"]}
    assert shown == {r.run_id for r in records}


@pytest.fixture(scope="module")
def later(raced, tmp_path_factory) -> dict:
    """After the race: its store emptied (``cache gc``), then at once a run with the same settings
    on the raced cache and store (it trains every job from the cached tokens, publishes and
    records) while ``cache gc --max-size 0`` and ``leaderboard render`` run in loops beside it,
    and the same run on a fresh cache without a store."""
    base, here = raced["base"], tmp_path_factory.mktemp("later")
    store, lb = base / "jobs", str(base / "lb")
    jobstore.collect(store, jobstore.list_entries(store), dry_run=False)
    before = {name: p.stat().st_mtime_ns for name, p in arrow_files(base / "cache").items()}
    loops = [
        start("loop", here / "loop", 0, ["cache", "gc", "--job-store", str(store), "--max-size", "0"]),
        start("loop", here / "loop", 0, ["leaderboard", "render", str(here / "site"), "--dir", lb]),
    ]
    runs = [
        start(
            "once",
            here / "once",
            0,
            ["run", *TOY, "--job-store", str(store), "--leaderboard", lb, "--output", str(here / "again")],
        ),
        start(
            "once",
            here / "once",
            0,
            ["run", *TOY, "--job-store", "none", "--output", str(here / "fresh")],
            HARNESS_CACHE=str(here / "fresh-cache"),
        ),
    ]
    done = finish(runs)
    (here / "loop" / "stop").write_text("")
    return {
        "base": base,
        "here": here,
        "before": before,
        "runs": done,
        "loops": finish(loops),
        "notes": notes(here / "loop"),
    }


def test_the_raced_cache_is_reused_and_equals_a_fresh_tokenization(raced, later):
    base, here = raced["base"], later["here"]
    for code, _, err in later["runs"]:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err and "damaged" not in err
    assert not any(reused(here / "again").values())  # the store was emptied: every job trained on the cache
    cache, fresh = arrow_files(base / "cache"), arrow_files(here / "fresh-cache")
    # reused: no file tokenized again (none added, none rewritten) ...
    assert {name: p.stat().st_mtime_ns for name, p in cache.items()} == later["before"]
    # ... and equal to what a run on an empty cache writes
    import datasets

    assert cache.keys() == fresh.keys() and len(cache) >= 6
    for name in cache:
        mine, theirs = datasets.Dataset.from_file(str(cache[name])), datasets.Dataset.from_file(str(fresh[name]))
        assert mine.data.table.equals(theirs.data.table), name
    assert not [p for p in (base / "cache" / "tokenized").glob("*/*") if not p.name.endswith((".arrow", ".lock"))]
    # trained on the raced cache or on a fresh one: what the raced runs computed
    assert metrics(here / "again") == metrics(here / "fresh") == metrics(base / "r0")


def test_cache_gc_and_renders_beside_a_run_corrupt_nothing(raced, later):
    base, here = raced["base"], later["here"]
    loops = later["notes"]
    assert [set(n["codes"]) for n in loops] == [{0}, {0}], [n["codes"] for n in loops]
    assert min(len(n["codes"]) for n in loops) >= 2  # they ran while the runs did, and once after
    # gc ran beside the run's publishing: the run's job folders are whole, and so is every
    # entry gc left (the last gc ran after the run: what it kept was in use or is whole)
    for key in json.loads((here / "again" / "results.json").read_text())["jobs"]:
        job = here / "again" / "jobs" / key
        assert (job / "result.json").is_file() and (job / "best" / "harness.json").is_file()
    assert all(jobstore.read_entry(base / "jobs" / e.key) is not None for e in jobstore.list_entries(base / "jobs"))
    assert not list((base / "jobs" / ".tmp").iterdir())
    # the run recorded while renders read the leaderboard: three whole records, a whole render
    assert len(read_records(base / "lb")) == len(set(SEEDS)) + 1
    assert (here / "site" / "index.html").is_file() and (here / "site" / "leaderboard.md").is_file()
    assert [p.name for p in here.iterdir() if p.name.startswith(".site")] == []  # no temporary folder left


def test_renders_landing_at_once_keep_the_last_and_leave_nothing(tmp_path, monkeypatch):
    """Another render lands in ``out`` between our moving the old one aside and moving ours in."""
    from harness.leaderboard import render

    out = tmp_path / "site"
    out.mkdir()
    (out / "old").write_text("")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "new").write_text("")
    rename, landed = os.rename, []

    def racing(src, dst):
        if Path(src) == ours and not landed:  # the other render's folder lands first
            other = tmp_path / "other"
            other.mkdir()
            (other / "theirs").write_text("")
            rename(other, out)
            landed.append(True)
        return rename(src, dst)

    monkeypatch.setattr(render.os, "rename", racing)
    render._swap(ours, out)
    assert landed and [p.name for p in out.iterdir()] == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # the old and the other render removed


def test_two_runs_racing_for_one_output_one_proceeds_the_other_refuses(tmp_path):
    out = tmp_path / "run"
    procs = [
        start(
            "prepare",
            tmp_path / "barrier",
            2,
            ["run", *ONE, "--job-store", "none", "--output", str(out), "--set", f"seed={seed}"],
        )
        for seed in (0, 1)
    ]
    done = finish(procs)
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 2], [err[-2000:] for _, _, err in done]
    (winner,) = [seed for seed, (code, _, _) in zip((0, 1), done, strict=True) if code == 0]
    (err,) = [err for code, _, err in done if code == 2]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        f"error: --output {out} is in use by another harness run (it holds {out / '.harness.lock'}); "
        "wait for that run to end, or choose another --output"
    ]
    # the winner's run is whole and only its own: the refused run wrote nothing
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["seed"] == winner
    results = json.loads((out / "results.json").read_text())
    assert len(results["jobs"]) == 2 and all(f"-{winner}-" in key for key in results["jobs"])
    assert sorted(p.name for p in (out / "jobs").iterdir()) == sorted(results["jobs"])


def test_processes_recording_one_run_at_once_write_one_record(raced, tmp_path):
    """Copies of one finished run (the same job results, other finish times: other run ids)
    recorded at once: one record, every process exits 0 and names it."""
    copies = []
    for i in range(4):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(raced["base"] / "r0", copy)
        stamp = time.time() - 3600 * (i + 1)
        os.utime(copy / "results.json", (stamp, stamp))
        copies.append(copy)
    procs = [start("record", tmp_path / "barrier", 4, [str(c), str(tmp_path / "lb")]) for c in copies]
    done = finish(procs)
    assert [code for code, _, _ in done] == [0] * 4, [err[-2000:] for _, _, err in done]
    recorded = notes(tmp_path / "barrier")
    files = sorted((tmp_path / "lb" / "runs").glob("*.json"))
    assert len(files) == 1 and sum(n["new"] for n in recorded) == 1
    assert {n["path"] for n in recorded} == {str(files[0])}
    assert len(read_records(tmp_path / "lb")) == 1
