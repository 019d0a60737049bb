"""End-to-end runs of the tiny model: results and gaps, run directories, 2 processes, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import GLUE_DIR, subprocess_env

pytestmark = pytest.mark.slow
# STL and the all-task MTL run only (the protocol's other stages are tested in test_science.py)
TOY = ["--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl,all"]


@pytest.fixture
def toy_env(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "run"
    os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:
        assert main(["run", *TOY, "--output", str(out), "--set", "epochs=2", "--seeds", "2"]) == 0
    finally:
        del os.environ["HARNESS_PLUGIN_MODULES"]
    return out


def test_run_writes_results_gaps_and_manifest(toy_run):
    results = json.loads((toy_run / "results.json").read_text())
    assert results["plan"] == {
        "tasks": ["toy.colour", "toy.size", "toy.score"],
        "group": ["toy.colour", "toy.size", "toy.score"],
        "seeds": [0, 1],
        "stages": ["stl", "all"],
        "groupers": ["affinity:tag", "cluster:cka_linear"],
    }
    assert len(results["jobs"]) == 3 * 2 + 2  # STL per task and seed, MTL per seed
    for entry in results["tasks"].values():
        primary = entry["primary"]
        stl, mtl = entry["stl"][primary]["values"], entry["mtl"][primary]["values"]
        assert entry["gap"]["values"] == pytest.approx([m - s for m, s in zip(mtl, stl, strict=True)])
        low, high = entry["gap"]["ci95"]
        assert low <= entry["gap"]["mean"] <= high
        assert entry["split"] == "test"
    # the tiny model learns the toy tasks: far above chance
    assert results["tasks"]["toy.size"]["stl"]["f1_macro"]["mean"] > 0.9
    manifest = json.loads((toy_run / "manifest.json").read_text())
    assert manifest["hardware"]["num_processes"] == 1 and manifest["seeds"] == [0, 1]
    assert manifest["plugins"]["toy"] and manifest["libraries"]["torch"]
    # provenance per job: the STL and MTL views of one stream differ, and neither is dropped
    prints = manifest["data_fingerprints"]
    assert set(prints) == set(results["jobs"])
    stl_colour = next(k for k, j in results["jobs"].items() if j["tasks"] == ["toy.colour"] and j["seed"] == 0)
    mtl = next(k for k, j in results["jobs"].items() if j["kind"] == "mtl" and j["seed"] == 0)
    assert set(prints[mtl]) >= {"toy/train", "toy/dev", "toy/test", "task:toy.score/train"}
    assert prints[stl_colour]["toy/train"] != prints[mtl]["toy/train"]
    assert manifest["encoder"]["preset"] == "tiny" and len(manifest["encoder"]["files_sha256"]) == 64
    assert manifest["libraries"]["tokenizers"] and manifest["libraries"]["scipy"]
    # job folders say which tasks they hold
    assert stl_colour.startswith("stl-0-toy.colour-") and mtl.startswith("mtl-0-toy.colour+toy.size+toy.score-")
    config = json.loads((toy_run / "config.json").read_text())
    assert config["config"]["epochs"] == 2 and config["tasks"] == results["plan"]["tasks"]
    for job in results["jobs"]:
        job_dir = toy_run / "jobs" / job
        assert (job_dir / "best" / "model.safetensors").exists() and not (job_dir / "state").exists()


def test_observer_hooks_see_the_run(toy_run):
    import toy

    assert (("started", str(toy_run)) in toy.EVENTS) and (("finished", str(toy_run)) in toy.EVENTS)
    assert toy.EVENTS.index(("started", str(toy_run))) < toy.EVENTS.index(("finished", str(toy_run)))


def test_show_prints_the_gap_table(toy_run, capsys):
    assert main(["show", str(toy_run)]) == 0
    err = capsys.readouterr().err
    assert "toy.colour" in err and "gap (MTL-STL)" in err and "2 seeds" in err
    assert main(["show", str(toy_run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads((toy_run / "results.json").read_text())


def test_existing_run_directory_is_never_overwritten(toy_run, toy_env, capsys):
    before = (toy_run / "results.json").read_bytes()
    assert main(["run", *TOY, "--output", str(toy_run), "--set", "epochs=2", "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run; pass --resume" in err
    assert "STL +" not in err  # refused before a run is announced
    assert main(["run", *TOY, "--output", str(toy_run), "--set", "epochs=3", "--seeds", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "started with different settings (config.epochs: 2 -> 3); rerun with the original flags" in err
    assert (toy_run / "results.json").read_bytes() == before


def test_resume_of_a_finished_run_reuses_every_job(toy_run, toy_env):
    stamps = {p: p.stat().st_mtime_ns for p in toy_run.glob("jobs/*/best/model.safetensors")}
    assert len(stamps) == 8
    assert main(["run", *TOY, "--output", str(toy_run), "--set", "epochs=2", "--seeds", "2", "--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in toy_run.glob("jobs/*/best/model.safetensors")} == stamps  # no retraining


def test_a_finished_job_leaves_no_optimizer_state(tmp_path, toy_env, monkeypatch):
    """Jobs save their resume state while unfinished (here after every epoch but the last) and
    delete it when they finish: a run directory keeps results and best weights, no optimizer."""
    from harness.training import runner

    save, saved = runner.save_state, []

    def spy(acc, job_dir, history, observers=(), best=None):
        save(acc, job_dir, history, observers, best)
        saved.append((job_dir.name, len(history), sorted(p.name for p in (job_dir / "state").iterdir())))

    monkeypatch.setattr(runner, "save_state", spy)
    run = tmp_path / "run"
    assert main(["run", *TOY, "--output", str(run), "--set", "epochs=3", "--set", "state_every_minutes=0"]) == 0
    jobs = sorted(p.parent.name for p in run.glob("jobs/*/result.json"))
    assert len(jobs) == 4  # 3 STL and the all-task MTL job
    assert sorted((job, epoch) for job, epoch, _ in saved) == [(job, epoch) for job in jobs for epoch in (1, 2)]
    assert all("optimizer.bin" in files and "history.json" in files for *_, files in saved)  # the state held it ...
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert not [p for p in left if "/state" in p or "optimizer" in p or p.endswith((".bin", ".pkl"))]  # ... and is gone
    best = [p for p in left if "/best/" in p]
    assert [p for p in best if p.endswith("/harness.json")] == [f"jobs/{job}/best/harness.json" for job in jobs]
    assert {p.split("/best/")[0] for p in best} == {f"jobs/{job}" for job in jobs}  # one self-describing model each


def _primary_metrics(run: Path) -> dict[str, tuple[float, float]]:
    results = json.loads((run / "results.json").read_text())
    return {t: (e["stl"][e["primary"]]["mean"], e["mtl"][e["primary"]]["mean"]) for t, e in results["tasks"].items()}


def _train_losses(run: Path) -> dict[str, list[float]]:
    out = {}
    for path in sorted(run.glob("jobs/*/result.json")):
        result = json.loads(path.read_text())
        out[path.parent.name] = [h["train_loss"] for h in result["history"]]
    return out


@pytest.mark.skipif(not GLUE_DIR.is_dir(), reason="GLUE data not found")
def test_two_processes_match_one_process(tmp_path):
    """The GLUE smoke run on 2 gloo ranks equals the 1-process run (dropout off: ranks draw their own masks)."""
    args = [
        "run",
        "--plugin",
        "glue",
        "--tasks",
        "rte,stsb",
        "--profile",
        "smoke",
        "--set",
        "dropout=0",
        "--set",
        "epochs=2",
        "--set",
        "max_train_examples=256",
    ]
    env = subprocess_env(HARNESS_GLUE_DIR=str(GLUE_DIR), ACCELERATE_USE_CPU="1")
    launches = {
        1: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "harness"],
        2: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness"],
    }
    for n, launch in launches.items():
        done = subprocess.run(
            [*launch, *args, "--output", str(tmp_path / f"p{n}")], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    manifests = {n: json.loads((tmp_path / f"p{n}" / "manifest.json").read_text()) for n in launches}
    assert manifests[2]["hardware"]["num_processes"] == 2  # two ranks really ran
    assert manifests[2]["hardware"]["distributed_type"].endswith("MULTI_CPU")
    assert manifests[1]["hardware"]["num_processes"] == 1
    # Stated tolerance: 1e-3 absolute on every primary metric and epoch loss (seen: agreement to 1e-6).
    one, two = _primary_metrics(tmp_path / "p1"), _primary_metrics(tmp_path / "p2")
    assert one.keys() == two.keys() == {"rte", "stsb"}
    for task in one:
        assert two[task] == pytest.approx(one[task], abs=1e-3)
    losses_one, losses_two = _train_losses(tmp_path / "p1"), _train_losses(tmp_path / "p2")
    assert losses_one.keys() == losses_two.keys()
    for job in losses_one:
        assert losses_two[job] == pytest.approx(losses_one[job], abs=1e-3)


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    """SIGKILL a run after a job saved its state mid-way; --resume finishes with identical metrics."""
    args = ["run", *TOY, "--set", "epochs=6", "--set", "max_train_examples=0", "--set", "state_every_minutes=0"]
    env = subprocess_env(HARNESS_PLUGIN_MODULES="toy")
    straight = subprocess.run(
        [sys.executable, "-m", "harness", *args, "--output", str(tmp_path / "straight")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", *args, "--output", str(killed_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    interrupted = None
    while time.monotonic() < deadline and proc.poll() is None:
        for state in killed_dir.glob("jobs/*/state/history.json"):
            if len(json.loads(state.read_text())) >= 2 and not (state.parents[1] / "result.json").exists():
                interrupted = state.parents[1]
        if interrupted is not None:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert interrupted is not None, "the run finished before a job could be interrupted"
    assert not (killed_dir / "results.json").exists()

    resumed = subprocess.run(
        [sys.executable, "-m", "harness", *args, "--output", str(killed_dir), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "after epoch" in resumed.stderr and str(interrupted / "state") in resumed.stderr
    straight_results = json.loads((tmp_path / "straight" / "results.json").read_text())
    resumed_results = json.loads((killed_dir / "results.json").read_text())
    assert resumed_results["tasks"] == straight_results["tasks"]  # same process layout: bitwise equal
    assert _train_losses(killed_dir) == _train_losses(tmp_path / "straight")


def test_damaged_run_files_are_one_line_errors(toy_run, toy_env, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(toy_run, run)
    (run / "results.json").write_text("{}\n")
    assert main(["show", str(run)]) == 2
    assert "not a harness file of this version (no 'plan', 'tasks', 'jobs')" in capsys.readouterr().err
    job = next(run.glob("jobs/stl-*/result.json"))
    job.write_text("garbage")
    assert main(["run", *TOY, "--output", str(run), "--set", "epochs=2", "--seeds", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{job}: not valid JSON" in err and f"delete {job.parent} to train that job again" in err
