"""``harness run --report-to tensorboard``: what the event files hold, read back with TensorBoard's reader."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.core.config import RunConfig, resolve
from harness.core.trackers import parse_report_to, require
from harness.errors import ConfigError
from harness.protocol.results import PredictorMatrix, PredictorScore, RunResults

TASKS = ["cervical.disc", "cervical.canal_stenosis"]
BATCH = 16
SMALL = ["--set", "epochs=2", "--set", "max_train_examples=160", "--set", "max_eval_examples=96"]


def _run_args(out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--plugin",
        "spine",
        "--profile",
        "smoke",
        "--tasks",
        ",".join(TASKS),
        "--stages",
        "stl,all",
        *SMALL,
        "--output",
        str(out),
        *extra,
    ]


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of one tracker run: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0 = keep every point
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


# -- the value and its checks -------------------------------------------------------------------------


def test_report_to_names_are_validated_and_do_not_change_what_a_job_computes():
    assert parse_report_to("") == () and parse_report_to(" tensorboard ,tensorboard") == ("tensorboard",)
    with pytest.raises(ConfigError, match="unknown tracker 'wandbx'; supported: tensorboard"):
        RunConfig(report_to="wandbx")
    with pytest.raises(ConfigError, match="unknown tracker 'nope'"):
        resolve("smoke", sets=["report_to=nope"])
    assert resolve("smoke", sets=["report_to=tensorboard"]).report_to == "tensorboard"
    cfg = RunConfig()
    assert cfg.training_hash() == dataclasses.replace(cfg, report_to="tensorboard").training_hash()


def test_unknown_tracker_fails_in_one_line_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_run_args(out, "--report-to", "wandbx")) == 2
    err = capsys.readouterr().err
    assert "unknown tracker 'wandbx'; supported: tensorboard" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_tensorboard_fails_in_one_line_before_any_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'harness\[tensorboard\]'"):
        require("tensorboard")
    out = tmp_path / "run"
    assert main(_run_args(out, "--report-to", "tensorboard")) == 2
    err = capsys.readouterr().err
    assert "the tensorboard package is not installed; pip install 'harness[tensorboard]'" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()
    require("")  # reporting nowhere needs no package


def test_run_scalars_flatten_matrices_scores_and_gaps_leaving_out_missing_values():
    tasks = ["a", "b"]
    matrix = PredictorMatrix("p", tasks, np.array([[1.0, 0.25], [math.nan, 1.0]]), False, 0.5, ["stl"])
    results = RunResults(
        plan={},
        training={},
        tasks={
            "a": {"stl": {"f1": {"mean": 0.5}}, "mtl": {"f1": {"mean": 0.75}}, "gap": {"mean": 0.25}},
            "b": {"stl": {"f1": {"mean": None}}},
        },
        groups=[{"tasks": tasks, "gaps": {"a": {"mean": 0.25}, "b": {"mean": None}}}],
        jobs={},
        rows={},
        predictors={"p": matrix.to_json()},
        scores={
            "noise_ceiling": {"value": 0.9},
            "predictors": {"p": PredictorScore("p", groups={"value": -0.5}, cost_share=0.1, seconds=0.5).to_json()},
        },
    )
    assert results.scalars() == {
        "predictor/p/a~a": 1.0,
        "predictor/p/a~b": 0.25,
        "predictor/p/b~b": 1.0,
        "score/p/groups_rho": -0.5,
        "score/p/cost_share": 0.1,
        "score/p/seconds": 0.5,
        "score/noise_ceiling": 0.9,
        "gap/a": 0.25,
        "stl/a/f1": 0.5,
        "mtl/a/f1": 0.75,
        "group_gap/a+b/a": 0.25,
    }


# -- end to end ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trackers") / "run"
    assert main(_run_args(out, "--report-to", "tensorboard")) == 0
    return out


@pytest.mark.slow
def test_each_job_logs_its_loss_every_optimizer_step_and_its_dev_metrics_every_epoch(tracked_run):
    results = json.loads((tracked_run / "results.json").read_text())
    (stream,) = results["rows"].values()  # both tasks read the same reports: one input stream
    steps = math.ceil(stream["train"] / BATCH)  # optimizer steps per epoch (no gradient accumulation)
    jobs = sorted(p.parent.name for p in tracked_run.glob("jobs/*/result.json"))
    assert len(jobs) == 3  # two STL jobs and the all-task MTL job
    assert sorted(p.name for p in (tracked_run / "tensorboard").iterdir()) == sorted([*jobs, "run"])
    for key in jobs:
        job = json.loads((tracked_run / "jobs" / key / "result.json").read_text())
        series = _scalars(tracked_run / "tensorboard" / key)
        losses = series["train/loss"]
        assert [s for s, _ in losses] == list(range(1, job["epochs_trained"] * steps + 1))
        assert len(series["train/learning_rate"]) == len(losses)
        for e, record in enumerate(job["history"]):
            end = (e + 1) * steps  # epoch values sit at the epoch's last optimizer step
            epoch_losses = [v for s, v in losses if e * steps < s <= end]
            assert np.mean(epoch_losses) == pytest.approx(record["train_loss"], rel=1e-5)
            assert series["train/epoch_loss"][e] == (end, pytest.approx(record["train_loss"], rel=1e-6))
            for task in job["tasks"]:
                for metric, value in record["dev"][task].items():
                    assert series[f"dev/{task}/{metric}"][e] == (end, pytest.approx(value, rel=1e-6, abs=1e-7))


@pytest.mark.slow
def test_the_run_logs_its_predictor_matrices_scores_and_gaps(tracked_run):
    data = json.loads((tracked_run / "results.json").read_text())
    series = _scalars(tracked_run / "tensorboard" / "run")
    logged = {tag: points[0][1] for tag, points in series.items()}
    assert all(points[0][0] == 0 and len(points) == 1 for points in series.values())
    expected = RunResults.from_json(data).scalars()
    assert logged.keys() == expected.keys()
    assert logged == {k: pytest.approx(v, rel=1e-6, abs=1e-7) for k, v in expected.items()}
    a, b = TASKS
    cka = data["predictors"]["cka_linear"]["matrix"]
    assert logged[f"predictor/cka_linear/{a}~{b}"] == pytest.approx(cka[0][1], rel=1e-6)
    nmi = data["predictors"]["label_nmi"]["matrix"]
    assert logged[f"predictor/label_nmi/{b}~{a}"] == pytest.approx(nmi[1][0], rel=1e-6)
    for task in TASKS:
        assert logged[f"gap/{task}"] == pytest.approx(data["tasks"][task]["gap"]["mean"], rel=1e-6)
    cost = data["scores"]["predictors"]["cka_linear"]["cost_share"]
    assert logged["score/cka_linear/cost_share"] == pytest.approx(cost, rel=1e-6)


@pytest.mark.slow
def test_a_run_resumes_with_another_report_to_reusing_its_jobs(tracked_run, tmp_path):
    """report_to is where a run reports, not what it computes: --resume may change it and trains nothing."""
    out = tmp_path / "run"
    assert main(_run_args(out)) == 0
    assert not (out / "tensorboard").exists()
    jobs = sorted(p.parent.name for p in out.glob("jobs/*/result.json"))
    assert jobs == sorted(p.parent.name for p in tracked_run.glob("jobs/*/result.json"))  # the same job keys
    assert main(_run_args(out, "--resume", "--report-to", "tensorboard")) == 0
    assert [p.name for p in (out / "tensorboard").iterdir()] == ["run"]  # every job reused, none trained


@pytest.mark.slow
def test_under_two_processes_only_the_main_process_writes_and_losses_are_global(tmp_path):
    """2 gloo ranks: one event file per tracker run, every optimizer step once, losses over both ranks."""
    import subprocess

    from tests.conftest import subprocess_env

    out = tmp_path / "run"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness"]
    done = subprocess.run(
        [*launch, *_run_args(out, "--report-to", "tensorboard")],
        env=subprocess_env(ACCELERATE_USE_CPU="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["hardware"]["num_processes"] == 2
    folders = sorted((out / "tensorboard").iterdir())
    assert len(folders) == 4 and all(len(list(f.glob("events.out.tfevents.*"))) == 1 for f in folders)
    for result in out.glob("jobs/*/result.json"):
        job = json.loads(result.read_text())
        losses = _scalars(out / "tensorboard" / result.parent.name)["train/loss"]
        per_epoch = len(losses) // job["epochs_trained"]
        assert len(losses) == per_epoch * job["epochs_trained"]
        for e, record in enumerate(job["history"]):  # the mean of the all-reduced step losses is the epoch's
            epoch = [v for s, v in losses if e * per_epoch < s <= (e + 1) * per_epoch]
            assert np.mean(epoch) == pytest.approx(record["train_loss"], rel=1e-5)
