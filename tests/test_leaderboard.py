"""The leaderboard: records from a real run, atomic and concurrent writes, views, the regression gate."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import LeaderboardError
from harness.leaderboard.gate import Tolerance, check, make_baseline
from harness.leaderboard.records import RunRecord
from harness.leaderboard.store import read_record, read_records, write_record
from tests.conftest import subprocess_env
from tests.leaderboard_fakes import make_record

FAKES = str(Path(__file__).resolve().parent / "leaderboard_fakes.py")
TOY = ["--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl,all"]


# --- records from a real run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_board(tmp_path_factory) -> tuple[Path, Path]:
    """A toy run (2 seeds, STL + all-task MTL) recorded with ``harness run --leaderboard``."""
    root = tmp_path_factory.mktemp("board")
    os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:
        args = ["run", *TOY, "--output", str(root / "run"), "--set", "epochs=2", "--seeds", "2"]
        assert main([*args, "--leaderboard", str(root / "lb")]) == 0
    finally:
        del os.environ["HARNESS_PLUGIN_MODULES"]
    return root / "run", root / "lb"


@pytest.mark.slow
def test_run_with_leaderboard_records_every_value_with_provenance(toy_board):
    run, board = toy_board
    (record,) = read_records(board)
    results = json.loads((run / "results.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert record.provenance.plugins == manifest["plugins"] and record.model.name == "tiny"
    assert record.model.weights_sha256 == manifest["encoder"]["files_sha256"]
    assert record.seeds == [0, 1] and [t.name for t in record.tasks] == ["toy.colour", "toy.size", "toy.score"]
    for task in record.tasks:  # the direction is the registered metric's, per metric
        assert task.higher_is_better == results["tasks"][task.name]["higher_is_better"]
        assert len(task.data_fingerprint) == 16 and task.split_fingerprints
    for row in record.results:
        if row.kind == "stl" and row.primary:  # the same per-seed values as the run's own summary
            assert row.values == pytest.approx(results["tasks"][row.task]["stl"][row.metric]["values"])
            assert row.mean == pytest.approx(results["tasks"][row.task]["stl"][row.metric]["mean"])
        if row.kind == "mtl" and row.primary:
            assert row.gap is not None and row.gap.mean == pytest.approx(results["tasks"][row.task]["gap"]["mean"])
        assert row.cost.jobs == 2 and row.cost.train_seconds > 0 and row.cost.examples_per_second > 0
        assert row.cost.peak_memory_mb > 0 and row.cost.processes == 1 and row.cost.device == "cpu"
    assert record.cost.jobs == len(results["jobs"])


@pytest.mark.slow
def test_a_run_is_recorded_once_and_a_file_is_refused_as_leaderboard(toy_board, tmp_path, capsys):
    run, board = toy_board
    assert main(["leaderboard", "add", str(run), "--dir", str(board)]) == 2
    assert "already on the leaderboard" in capsys.readouterr().err
    os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:  # a resume rewrites results.json (its timings change) but trains nothing: the same run, one record
        args = ["run", *TOY, "--output", str(run), "--set", "epochs=2", "--seeds", "2", "--resume"]
        assert main([*args, "--leaderboard", str(board)]) == 0
    finally:
        del os.environ["HARNESS_PLUGIN_MODULES"]
    assert len(read_records(board)) == 1
    for bad in ("a/b", "..", "with space", "x" * 200, ".hidden", ""):
        assert main(["leaderboard", "add", str(run), "--dir", str(tmp_path / "lb"), "--run-id", bad]) == 2
        assert "a run id is 1-128 letters" in capsys.readouterr().err
    assert not (tmp_path / "lb" / "runs").exists() or not list((tmp_path / "lb" / "runs").iterdir())
    (tmp_path / "file").write_text("x")
    os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:
        args = ["run", *TOY, "--output", str(tmp_path / "r"), "--leaderboard", str(tmp_path / "file")]
        assert main(args) == 2
    finally:
        del os.environ["HARNESS_PLUGIN_MODULES"]
    assert "is a file" in capsys.readouterr().err and not (tmp_path / "r").exists()  # refused before training


@pytest.mark.slow
def test_check_of_a_run_against_its_own_baseline_passes(toy_board, tmp_path, capsys):
    run, _ = toy_board
    baseline = tmp_path / "baseline.json"
    assert main(["leaderboard", "baseline", "--from", str(run), "--out", str(baseline)]) == 0
    assert main(["leaderboard", "check", "--baseline", str(baseline), str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] and {c["verdict"] for c in out["checks"]} <= {"pass", "inconclusive"}
    assert main(["leaderboard", "baseline", "--from", str(run), "--out", str(baseline)]) == 2  # never by accident
    assert "--force" in capsys.readouterr().err


# --- atomic, concurrent writes -----------------------------------------------------------------


def test_records_round_trip_and_invalid_files_are_named(tmp_path):
    record = make_record({"a": [0.5, 0.6]}, run_id="r1")
    path = write_record(tmp_path, record)
    assert read_record(path) == record
    bad = tmp_path / "runs" / "broken.json"
    bad.write_text(json.dumps({**record.to_json(), "seeds": "zero"}))
    with pytest.raises(LeaderboardError, match=r"broken.json: not a valid leaderboard record: seeds"):
        read_records(tmp_path)
    bad.write_text(json.dumps({**record.to_json(), "schema_version": 9}))
    with pytest.raises(LeaderboardError, match="schema version 9; this harness reads version 1"):
        read_records(tmp_path)
    bad.write_text('{"schema_version": 1, ')
    with pytest.raises(LeaderboardError, match="broken.json: not valid JSON"):
        read_records(tmp_path)


def test_a_writer_killed_mid_write_leaves_every_earlier_record_readable(tmp_path):
    """SIGKILL at a random moment of a writer in a loop, three times; then every record file is whole."""
    rng = random.Random(0)
    written = 0
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, FAKES, "write", str(tmp_path), "100000", f"w{attempt}"],
                                env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(list((tmp_path / "runs").glob(f"w{attempt}-*.json"))) < 5:  # mid-stream, not at start-up
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        records = read_records(tmp_path)  # raises on a torn or invalid record
        assert len(records) > written
        written = len(records)
    assert len({r.run_id for r in records}) == written


def test_a_writer_killed_between_write_and_link_leaves_only_an_ignored_temp_file(tmp_path):
    write_record(tmp_path, make_record({"a": [0.5, 0.6]}, run_id="first"))
    code = (
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(Path(FAKES).parent.parent)!r})\n"
        "from tests.leaderboard_fakes import make_record\n"
        "from harness.leaderboard import store\n"
        "os.link = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"store.write_record({str(tmp_path)!r}, make_record({{'a': [0.1, 0.2]}}, run_id='second'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in (tmp_path / "runs").glob(".second.*")]  # the written temp file is left behind...
    assert [r.run_id for r in read_records(tmp_path)] == ["first"]  # ...and ignored; the earlier record is whole


def test_four_concurrent_writers_lose_no_record(tmp_path):
    procs = [
        subprocess.Popen(
            [sys.executable, FAKES, "write", str(tmp_path), "25", f"p{i}"], env=subprocess_env(), stderr=subprocess.PIPE
        )  # fmt: skip
        for i in range(4)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode() if p.stderr else ""
    records = read_records(tmp_path)
    assert len(records) == 100 and len({r.run_id for r in records}) == 100
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")] == [".lock"]  # no temp file left


# --- views -----------------------------------------------------------------------------------


def test_show_ranks_by_registered_direction_and_separates_incomparable_data(tmp_path, capsys):
    lower = {"a": [0.30, 0.31]}
    write_record(tmp_path, make_record(lower, run_id="worse", higher=False, metric="mse", results_sha="1"))
    write_record(tmp_path, make_record({"a": [0.10, 0.11]}, run_id="better", higher=False, metric="mse",
                                       results_sha="2"))  # fmt: skip
    write_record(tmp_path, make_record({"a": [0.01, 0.02]}, run_id="other-data", higher=False, metric="mse",
                                       fingerprints={"a": "fp-new"}, results_sha="3"))  # fmt: skip
    assert main(["leaderboard", "show", "--dir", str(tmp_path), "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert len(tables) == 2  # the other data fingerprint is another table, never mixed in
    ranked = next(t for t in tables if t["key"]["data_fingerprint"] == "fp-a")
    assert [r["run_id"] for r in ranked["rows"]] == ["better", "worse"]  # lower is better: 0.105 ranks first
    other = next(t for t in tables if t["key"]["data_fingerprint"] == "fp-new")
    assert "data fingerprint differs" in other["not_compared_with_previous"]
    assert main(["leaderboard", "show", "--dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "not compared with the a table above: data fingerprint differs" in err and "lower is better" in err


def test_show_filters_by_model_plugin_and_predictor(tmp_path, capsys):
    write_record(tmp_path, make_record({"a": [0.5, 0.6]}, run_id="tiny-run", results_sha="1"))
    write_record(tmp_path, make_record({"a": [0.5, 0.6]}, run_id="big-run", model="minilm", results_sha="2",
                                       plugins=("glue",)))  # fmt: skip
    assert main(["leaderboard", "show", "--dir", str(tmp_path), "--model", "minilm", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for t in out["tables"] for r in t["rows"]] == ["big-run"]
    assert [p["run_id"] for p in out["predictors"]] == ["big-run"]
    assert main(["leaderboard", "show", "--dir", str(tmp_path), "--plugin", "spine", "--json"]) == 0
    assert {r["run_id"] for t in json.loads(capsys.readouterr().out)["tables"] for r in t["rows"]} == {"tiny-run"}
    assert main(["leaderboard", "show", "--dir", str(tmp_path), "--predictor", "nope"]) == 2
    assert "no result matches" in capsys.readouterr().err
    assert main(["leaderboard", "show", "--dir", str(tmp_path / "none")]) == 2
    assert "no leaderboard here" in capsys.readouterr().err


def test_schema_is_the_record_model(capsys):
    assert main(["leaderboard", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "RunRecord" and {"provenance", "results", "tasks"} <= set(schema["required"])
    assert schema["additionalProperties"] is False


# --- the regression gate ---------------------------------------------------------------------

BASE = {"a": [0.50, 0.55, 0.45], "b": [0.70, 0.72, 0.74]}
BASE_MTL = {"a": [0.52, 0.56, 0.47], "b": [0.69, 0.73, 0.74]}


def _verdicts(checks):
    return {(c.name, c.group, c.what): c.verdict for c in checks}


def test_a_degraded_result_fails_the_gate_and_names_the_regression(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(make_baseline(make_record(BASE, BASE_MTL)).model_dump(mode="json")))
    degraded = {**BASE_MTL, "b": [v - 0.15 for v in BASE_MTL["b"]]}  # task b loses 0.15 when shared
    run = tmp_path / "run.json"
    run.write_text(json.dumps(make_record(BASE, degraded, run_id="run-b").to_json()))
    assert main(["leaderboard", "check", "--baseline", str(baseline), str(run)]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("regressed"))
    assert " b " in line and "a+b" in line and "-0.150" in line and "FAILED: 1 regressed" in err
    improved = {**BASE_MTL, "b": [v + 0.15 for v in BASE_MTL["b"]]}
    run.write_text(json.dumps(make_record(BASE, improved, run_id="run-c").to_json()))
    assert main(["leaderboard", "check", "--baseline", str(baseline), str(run)]) == 0
    assert "1 improved" in capsys.readouterr().err


def test_lower_is_better_metrics_regress_upwards():
    base = make_record({"a": [0.10, 0.12, 0.11]}, higher=False, metric="mse")
    worse = make_record({"a": [0.30, 0.32, 0.31]}, higher=False, metric="mse", run_id="worse")
    better = make_record({"a": [0.01, 0.02, 0.01]}, higher=False, metric="mse", run_id="better")
    assert _verdicts(check(make_baseline(base), worse))[("a", "a", "metric")] == "regressed"
    assert _verdicts(check(make_baseline(base), better))[("a", "a", "metric")] == "improved"


def test_a_noisy_unchanged_result_is_never_regressed_and_noise_makes_it_inconclusive():
    """Reruns drawn from the baseline's own distribution: pass or inconclusive, never regressed."""
    rng = np.random.default_rng(0)
    tol = Tolerance(floor=0.01, detect=0.1)
    verdicts = []
    for sd in (0.005, 0.05):  # quiet seeds, then seeds noisier than the change to detect
        base = make_baseline(make_record({"a": list(rng.normal(0.6, sd, 3))}), tol)
        for i in range(200):
            run = make_record({"a": list(rng.normal(0.6, sd, 3))}, run_id=f"r{i}")
            verdicts.append((sd, _verdicts(check(base, run))[("a", "a", "metric")]))
    quiet = [v for sd, v in verdicts if sd == 0.005]
    noisy = [v for sd, v in verdicts if sd == 0.05]
    assert "regressed" not in quiet + noisy
    assert quiet.count("pass") == len(quiet)  # the floor plus t * se covers quiet reruns
    assert noisy.count("inconclusive") >= 0.9 * len(noisy)  # seed noise above the change to detect: cannot vouch


def test_another_data_fingerprint_is_refused_with_the_reason(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(make_baseline(make_record(BASE, BASE_MTL)).model_dump(mode="json")))
    run = tmp_path / "run.json"
    run.write_text(json.dumps(make_record(BASE, BASE_MTL, fingerprints={"a": "fp-changed"}).to_json()))
    assert main(["leaderboard", "check", "--baseline", str(baseline), str(run), "--json"]) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    for c in checks:
        if c["name"] == "a" or c["what"] == "score":
            assert (
                c["verdict"] == "incomparable"
                and "data fingerprint differs: baseline fp-a, run fp-changed" in (c["reason"])
            ), c
        else:
            assert c["verdict"] in ("pass", "inconclusive") and c["change"] == 0, c


def test_another_model_or_config_is_refused_as_a_whole():
    base = make_baseline(make_record(BASE))
    with pytest.raises(LeaderboardError, match="model .* is not the baseline's"):
        check(base, make_record(BASE, model="minilm"))
    other = make_record(BASE)
    other = RunRecord.model_validate(
        {
            **other.to_json(),
            "provenance": {
                **other.to_json()["provenance"],
                "config_hash": "h2",
                "config": {"model": "tiny", "epochs": 9},
            },
        }  # fmt: skip
    )
    with pytest.raises(LeaderboardError, match=r"training config differs from the baseline's \(epochs\)"):
        check(base, other)


def test_predictor_scores_are_gated_with_their_bootstrap_interval():
    base = make_baseline(make_record(BASE, rho=0.8, rho_ci=(0.7, 0.9)))
    assert _verdicts(check(base, make_record(BASE, rho=0.1, rho_ci=(0.0, 0.2))))[
        ("cka_linear", "pairs", "score")
    ] == "regressed"  # fmt: skip
    wide = make_baseline(make_record(BASE, rho=0.8, rho_ci=(-0.5, 1.0)))
    assert _verdicts(check(wide, make_record(BASE, rho=0.3, rho_ci=(-0.9, 0.9))))[
        ("cka_linear", "pairs", "score")
    ] == "inconclusive"  # fmt: skip


def test_baselines_that_could_never_fail_are_refused(tmp_path, capsys):
    with pytest.raises(LeaderboardError, match="one seed: a baseline needs the seed spread"):
        make_baseline(make_record({"a": [0.5]}))
    with pytest.raises(ValueError, match=r"floor \(0.5\) must be below detect \(0.1\)"):
        Tolerance(floor=0.5, detect=0.1)
    with pytest.raises(ValueError):
        Tolerance(score_detect=float("inf"))
    record = tmp_path / "record.json"
    record.write_text(json.dumps(make_record(BASE).to_json()))
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(make_baseline(make_record(BASE)).model_dump(mode="json")))
    assert main(["leaderboard", "check", "--baseline", str(record), str(record)]) == 2
    assert "a leaderboard record, not a baseline" in capsys.readouterr().err
    assert main(["leaderboard", "check", "--baseline", str(baseline), str(baseline)]) == 2
    assert "is a baseline; check a run directory" in capsys.readouterr().err


def test_baseline_errors_are_one_line(tmp_path, capsys):
    assert main(["leaderboard", "check", "--baseline", str(tmp_path / "none.json"), str(tmp_path)]) == 2
    assert "cannot read it" in capsys.readouterr().err
    (tmp_path / "b.json").write_text('{"kind": "other"}')
    assert main(["leaderboard", "check", "--baseline", str(tmp_path / "b.json"), str(tmp_path)]) == 2
    assert "not a baseline file" in capsys.readouterr().err
    assert main(["leaderboard", "baseline", "--from", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "no results.json: not a finished harness run (name a run directory)" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    assert main(["leaderboard", "baseline", "--from", str(tmp_path), "--out", str(tmp_path / "no" / "x.json")]) == 2
    assert "no folder" in capsys.readouterr().err and not (tmp_path / "no").exists()
