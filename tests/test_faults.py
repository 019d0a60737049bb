"""Faults: a run killed anywhere resumes to the uninterrupted run's results; a NaN or infinite
loss fails its job clearly; no writer silently overwrites an existing output.

The kills are real SIGKILLs of a ``harness run`` subprocess (``tests/faults_worker.py``), at a
random optimizer step (not an epoch's end) and inside each write of the pipeline. The random
step comes from ``HARNESS_FAULT_SEED`` when set (a failure message names the seed), else a new
seed per session.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow

WORKER = Path(__file__).resolve().parent / "faults_worker.py"
# 2 STL jobs and the all-task MTL job (two streams, with its gradient/TAG observers), 3 epochs of
# 6 optimizer steps per stream, a resume state after epochs 1 and 2 of every job.
RUN = [
    "run",
    "--tasks",
    "toy.colour,toy.score",
    "--profile",
    "smoke",
    "--stages",
    "stl,all",
    "--set",
    "state_every_minutes=0",
    "--set",
    "max_train_examples=96",
    "--set",
    "max_eval_examples=32",
    "--set",
    "observe_every=5",
    "--set",
    "probe_examples=32",
]
SEED = int(os.environ.get("HARNESS_FAULT_SEED") or random.SystemRandom().randrange(2**31))


def harness(fault: str | None, out: Path, *extra: str, log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``harness run`` (RUN) into ``out``: through the fault worker with ``fault``, or the plain CLI (None)."""
    head = [sys.executable, "-m", "harness"] if fault is None else [sys.executable, str(WORKER), fault, str(log)]
    return subprocess.run(
        [*head, *RUN, "--output", str(out), *extra],
        env=subprocess_env(HARNESS_PLUGIN_MODULES="toy"),
        capture_output=True,
        text=True,
        timeout=600,
    )


@dataclass(frozen=True)
class Reference:
    run: Path
    steps: list[dict[str, Any]]  # every optimizer step of the run (faults_worker's log)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    folder = tmp_path_factory.mktemp("faults")
    done = harness("none", folder / "run", log=folder / "steps.jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [json.loads(line) for line in (folder / "steps.jsonl").read_text().splitlines()]
    return Reference(folder / "run", steps)


# --- comparing two runs -----------------------------------------------------------------------


def _untimed(value: Any) -> Any:
    """A JSON value without what measures the session rather than the training: time, place, memory,
    and ``train_examples`` (rows trained in this process: fewer in a resumed job)."""
    if isinstance(value, dict):
        drop = ("seconds", "host", "pid", "peak_memory_mb", "memory", "reused_from", "train_examples")
        return {k: _untimed(v) for k, v in value.items() if not any(d in k for d in drop)}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}[{i}]").items()}
    return {path: value}


def _numbers(run: Path) -> dict[str, Any]:
    """Every value a run computed: each job's result (history, metrics, observations, ...) and
    results.json's gaps, groups and predictor matrices, by path."""
    out: dict[str, Any] = {}
    for path in sorted(run.glob("jobs/*/result.json")):
        out.update(_leaves(_untimed(json.loads(path.read_text())), path.parent.name))
    results = json.loads((run / "results.json").read_text())
    for key in ("tasks", "groups", "predictors", "pair_gaps"):
        out.update(_leaves(_untimed(results[key]), key))
    return out


def _arrays(run: Path) -> dict[str, np.ndarray]:
    """Each job's saved best weights (encoder and heads) and probe-set features, by job and name."""
    from safetensors.numpy import load_file

    out: dict[str, np.ndarray] = {}
    for job in sorted(run.glob("jobs/*")):
        for file in sorted((job / "best").glob("*.safetensors")):
            out.update({f"{job.name}/{k}": v for k, v in load_file(str(file)).items()})
        if (job / "features.npy").exists():
            out[f"{job.name}/features"] = np.load(job / "features.npy", allow_pickle=False)
    return out


def differences(reference: Path, run: Path) -> dict[str, float]:
    """Largest absolute difference between two runs: ``metrics`` (every number of ``_numbers``),
    ``weights`` (every saved tensor), ``features``. Raises AssertionError when they hold different
    values of another kind or different keys (another job, epoch, task)."""
    a, b = _numbers(reference), _numbers(run)
    assert a.keys() == b.keys(), sorted(set(a) ^ set(b))[:10]
    metric = 0.0
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float | int) and not isinstance(x, bool) and isinstance(y, float | int):
            if not (math.isnan(x) and math.isnan(y)):
                metric = max(metric, abs(float(x) - float(y)))
        else:
            assert x == y, f"{key}: {x!r} != {y!r}"
    wa, wb = _arrays(reference), _arrays(run)
    assert wa.keys() == wb.keys() and wa, sorted(set(wa) ^ set(wb))[:10]
    gaps = {k: float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]), initial=0.0)) for k in wa}
    weights = max((v for k, v in gaps.items() if not k.endswith("/features")), default=0.0)
    features = max((v for k, v in gaps.items() if k.endswith("/features")), default=0.0)
    return {"metrics": metric, "weights": weights, "features": features}


# --- a) kill anywhere, resume -------------------------------------------------------------------

# One run killed at each write of the pipeline in turn: each process resumes what the previous
# kill left and is killed at the next point (counted from its own start); the last one finishes.
# (kill point, fault, a path the kill left (in the run; store/: in the job store), a path it must
# not have left, what the next process logs)
CHAIN = [
    ("mid-save of the resume state", "save:2", "jobs/*/state.tmp", "jobs/*/best", "after epoch 1"),
    ("between the state's two renames", "rename:state.tmp:1", "jobs/*/state.old", "jobs/*/state", "after epoch 2"),
    ("writing the best weights", "rename:best.tmp:1", "jobs/*/best.tmp", "jobs/*/best", "after epoch 2"),
    ("writing a job's result", "rename:result.json:1", "jobs/*/.result.json.*", "jobs/*/result.json", None),
    ("publishing to the job store", "publish:1", "store/.tmp/*", "results.json", "finished before, reusing"),
    ("writing the manifest", "rename:manifest.json:1", ".manifest.json.*", "results.json", None),
    ("writing the results", "rename:results.json:1", "manifest.json", "results.json", None),
]


def test_a_run_killed_at_every_write_resumes_to_the_same_results(reference, tmp_path):
    """SIGKILL inside each write (resume state, its swap, best weights, a job's result, the job
    store's entry, the manifest); after all of them, ``--resume`` ends with the uninterrupted run's
    metrics, weights and features, bit for bit, and the store holds no damaged entry."""
    run, store = tmp_path / "run", ("--job-store", str(tmp_path / "store"))
    expect = None
    for n, (point, fault, left, gone, says) in enumerate(CHAIN):
        killed = harness(fault, run, *store, *(("--resume",) if n else ()), log=tmp_path / "steps.jsonl")
        assert killed.returncode == -signal.SIGKILL, (
            f"{point}: not killed (rc {killed.returncode}): {killed.stderr[-2000:]}"
        )
        assert expect is None or expect in killed.stderr, f"after the kill {CHAIN[n - 1][0]}: no {expect!r} in the log"
        assert any(tmp_path.glob(left if left.startswith("store") else f"run/{left}")), f"{point}: left no {left}"
        assert not any(run.glob(gone)), f"{point}: {gone} exists after the kill"
        expect = says
    resumed = harness(None, run, *store, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert differences(reference.run, run) == {"metrics": 0.0, "weights": 0.0, "features": 0.0}
    assert not any(run.glob("jobs/*/state*")) and not any(run.glob("jobs/*/best.*")), "leftovers of the kills"
    from harness.protocol.jobstore import read_entry

    entries = [e for e in (tmp_path / "store").iterdir() if not e.name.startswith(".")]
    assert len(entries) == 2 and all(read_entry(e) is not None for e in entries)  # the killed publication: none


def test_a_run_killed_at_a_random_step_resumes_to_the_same_results(reference, tmp_path):
    """SIGKILL after a random optimizer step that is not an epoch's last; ``--resume`` restarts that
    job's epoch from the state saved after the one before (or the job from scratch) and ends with
    bit-identical metrics, weights and features (CPU, one process: the same kernels in the same order)."""
    mid_epoch = [s for s in reference.steps if s["update"] < s["updates"]]
    pick = random.Random(SEED).choice(mid_epoch)
    why = f"killed after optimizer step {pick} (HARNESS_FAULT_SEED={SEED} repeats it)"
    run = tmp_path / "run"
    killed = harness(f"step:{pick['step']}", run, log=tmp_path / "steps.jsonl")
    assert killed.returncode == -signal.SIGKILL, f"{why}: rc {killed.returncode}: {killed.stderr[-2000:]}"
    assert json.loads((tmp_path / "steps.jsonl").read_text().splitlines()[-1]) == pick, why
    resumed = harness(None, run, "--resume")
    assert resumed.returncode == 0, f"{why}: {resumed.stderr[-3000:]}"
    if pick["epoch"] > 1:
        assert f"after epoch {pick['epoch'] - 1}" in resumed.stderr, why
    assert differences(reference.run, run) == {"metrics": 0.0, "weights": 0.0, "features": 0.0}, why


# --- b) NaN or infinite loss ---------------------------------------------------------------------

SMALL = ["--profile", "smoke", "--stages", "stl,all", "--set", "max_train_examples=96", "--set", "max_eval_examples=32"]


def test_an_infinite_loss_fails_its_jobs_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    """``diverging.huge`` (targets ~1e30: +inf squared error in float32) fails its STL job and the
    MTL job it is in, from their first step; the STL job of ``toy.colour`` is kept; the run exits 2
    and records nothing on the leaderboard."""
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy,diverging")
    run, board = tmp_path / "run", tmp_path / "board"
    args = ["run", "--tasks", "toy.colour,diverging.huge", *SMALL, "--output", str(run), "--leaderboard", str(board)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for job in ("STL diverging.huge seed 0", "MTL toy.colour+diverging.huge seed 0"):
        assert re.search(
            rf"{re.escape(job)}: the training loss is \+inf at optimizer step 1 \(step 1 of \d+ in epoch 1\)", err
        )
    failed = {json.loads(p.read_text())["describe"] for p in run.glob("jobs/*/error.json")}
    assert failed == {"STL diverging.huge seed 0", "MTL toy.colour+diverging.huge seed 0 (+ gradient/TAG observers)"}
    assert [p.parent.name.split("-")[2] for p in run.glob("jobs/*/result.json")] == ["toy.colour"]
    assert not any(run.glob("jobs/*/state*")), "a diverged job saves no state"
    assert not (run / "results.json").exists() and not any(board.glob("runs/*.json"))


def test_a_nan_loss_fails_stl_and_mtl_jobs_naming_epoch_and_step(tmp_path, monkeypatch, capsys):
    """A learning rate of 1e30 makes every job's loss NaN from its second optimizer step."""
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    run = tmp_path / "run"
    lr = ["--set", "learning_rate=1e30", "--set", "head_learning_rate=1e30"]
    assert main(["run", "--tasks", "toy.colour,toy.size", *SMALL, *lr, "--output", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for job in ("STL toy.colour seed 0", "STL toy.size seed 0", "MTL toy.colour+toy.size seed 0"):
        line = re.search(
            rf"{re.escape(job)}: the training loss is nan at optimizer step 2 \(step 2 of \d+ in epoch 1\)", err
        )
        assert line, job
    errors = [json.loads(p.read_text()) for p in run.glob("jobs/*/error.json")]
    assert len(errors) == 3 and all("the training loss is nan" in e["error"] for e in errors)
    assert not any(run.glob("jobs/*/result.json")) and not (run / "results.json").exists()


# --- c) no writer silently overwrites ------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("the user's own file\n")
    return path


WRITERS = {
    # name: (make the existing target in tmp, the command's argv given the reference run and target, message)
    "run --output holding a run": (
        lambda tmp, ref: ref,
        lambda ref, target: [*RUN, "--output", str(target)],
        "already holds a run; pass --resume to continue it, or choose another --output",
    ),
    "run --output holding other files": (
        lambda tmp, ref: _user_folder(tmp / "mine"),
        lambda ref, target: [*RUN, "--output", str(target)],
        "is a non-empty folder that holds no harness run; choose a new folder",
    ),
    "run --output naming a file": (
        lambda tmp, ref: _file(tmp / "file"),
        lambda ref, target: [*RUN, "--output", str(target)],
        "is a file; choose a new folder",
    ),
    "run --leaderboard holding other files": (
        lambda tmp, ref: _user_folder(tmp / "mine"),
        lambda ref, target: [*RUN, "--output", str(target.parent / "new"), "--leaderboard", str(target)],
        "a non-empty folder without runs/; name a leaderboard folder",
    ),
    "leaderboard add, the same run again": (
        lambda tmp, ref: _board_with(ref, tmp / "board"),
        lambda ref, target: ["leaderboard", "add", str(ref), "--dir", str(target)],
        "this run is already on the leaderboard as",
    ),
    "predict --output": (
        lambda tmp, ref: _file(_file(tmp / "in.jsonl", '{"text": "a red box"}\n').parent / "out.jsonl"),
        lambda ref, target: ["predict", str(ref), "--input", str(target.parent / "in.jsonl"), "--output", str(target)],
        "exists; choose another file, or pass --force to replace it",
    ),
    "spine generate --out": (
        lambda tmp, ref: _file(_user_folder(tmp / "corpus") / "reports.jsonl").parent,
        lambda ref, target: ["spine", "generate", "--out", str(target), "--reports", "3"],
        "already there; pass --force to overwrite or choose another --out",
    ),
    "leaderboard render": (
        lambda tmp, ref: _user_folder(tmp / "site"),
        lambda ref, target: [
            "leaderboard",
            "render",
            str(target),
            "--dir",
            str(_board_with(ref, target.parent / "board")),
        ],
        "is a non-empty folder that is not a leaderboard render",
    ),
    "leaderboard baseline --out": (
        lambda tmp, ref: _file(tmp / "baseline.json"),
        lambda ref, target: ["leaderboard", "baseline", "--from", str(ref), "--out", str(target)],
        "exists; pass --force to replace the baseline on purpose",
    ),
}


def _file(path: Path, text: str = "an earlier output\n") -> Path:
    path.write_text(text)
    return path


def _board_with(run: Path, board: Path) -> Path:
    assert main(["leaderboard", "add", str(run), "--dir", str(board)]) == 0
    return board


@pytest.mark.parametrize("writer", list(WRITERS))
def test_no_writer_overwrites_an_existing_output(writer, reference, tmp_path, monkeypatch, capsys):
    if writer == "leaderboard render":
        pytest.importorskip("matplotlib")
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    make, argv, message = WRITERS[writer]
    ref = tmp_path / "ref"
    shutil.copytree(reference.run, ref, symlinks=True)
    target = make(tmp_path, ref)
    watched = target if target.is_dir() else target.parent
    before = _snapshot(watched)
    assert main(argv(ref, target)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err, err[-2000:]
    assert _snapshot(watched) == before, f"{writer} changed {watched}"
