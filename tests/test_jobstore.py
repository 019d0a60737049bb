"""The job store: a second run reuses the first run's jobs; keys change with what a job computes;
half-written entries are ignored; two runs needing one job train it once; ``cache ls``/``gc``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.config import RunConfig
from harness.protocol import jobstore
from harness.protocol.jobstore import JobStore, key_lock
from harness.protocol.plan import JobSpec, LoadSpec
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow
TOY = ["--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl,all", "--set", "epochs=1"]


def run(out: Path, store: Path | str, *extra: str) -> dict:
    assert main(["run", *TOY, "--output", str(out), "--job-store", str(store), *extra]) == 0
    return json.loads((out / "results.json").read_text())


def reused(results: dict) -> dict[str, str | None]:
    return {key: job.get("reused_from") for key, job in results["jobs"].items()}


@pytest.fixture
def toy_env(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> tuple[Path, Path]:
    """(run directory, store) of a first run that trained every job and published it."""
    base = tmp_path_factory.mktemp("store")
    os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:
        results = run(base / "run1", base / "jobs")
    finally:
        del os.environ["HARNESS_PLUGIN_MODULES"]
    assert not any(reused(results).values())  # trained, not reused
    return base / "run1", base / "jobs"


@pytest.fixture
def store(first, tmp_path) -> Path:
    """A private copy of the first run's store (tests below change it)."""
    copy = tmp_path / "jobs"
    shutil.copytree(first[1], copy)
    return copy


def _linked_from_store(best: Path) -> bool:
    """Every file of a reused job's best/ is its store entry's file (the same inode)."""
    entry = Path(json.loads((best.parent / "reused.json").read_text())["reused_from"]) / "best"
    return all(os.path.samefile(f, entry / f.name) for f in best.iterdir()) and any(best.iterdir())


def test_second_run_reuses_every_job(first, store, tmp_path, toy_env, capsys):
    results = run(tmp_path / "run2", store)
    sources = reused(results)
    assert len(sources) == 4 and all(s and Path(s).parent == store.resolve() for s in sources.values())
    before = json.loads((first[0] / "results.json").read_text())
    assert results["tasks"] == before["tasks"]  # the same metrics and gaps
    assert results["predictors"]["cka_linear"]["matrix"] == before["predictors"]["cka_linear"]["matrix"]  # features
    jobs = tmp_path / "run2" / "jobs"
    assert not list(jobs.glob("*/state"))  # nothing trained here: the saved models are the store's, hard-linked
    assert len(list(jobs.glob("*/best"))) == 4 and all(_linked_from_store(best) for best in jobs.glob("*/best"))
    features = next(jobs.glob("stl-*/features.npy"))
    assert features.stat().st_nlink == 2  # a hard link into the store
    assert f"4 of 4 jobs reused from store {store.resolve()}" in capsys.readouterr().err  # the run says so
    assert main(["show", str(tmp_path / "run2")]) == 0
    assert f"4 of 4 jobs reused from store {store.resolve()}" in capsys.readouterr().err


def test_a_fully_reused_run_keeps_its_leaderboard_record(first, store, tmp_path, toy_env, capsys):
    """Every job reused: the same job results as the first run, so the leaderboard keeps the first
    run's record instead of counting the same measurements twice; a new seed trains and records."""
    board = tmp_path / "board"
    assert main(["leaderboard", "add", str(first[0]), "--dir", str(board)]) == 0
    capsys.readouterr()
    run(tmp_path / "run2", store, "--leaderboard", str(board))
    said = capsys.readouterr()
    assert "already on the leaderboard (the same job results, resumed or reused)" in said.out + said.err
    assert len(list((board / "runs").glob("*.json"))) == 1
    run(tmp_path / "run3", store, "--leaderboard", str(board), "--set", "seed=7")
    said = capsys.readouterr()
    assert "recorded on the leaderboard: " in said.out + said.err
    assert len(list((board / "runs").glob("*.json"))) == 2


def test_two_ranks_agree_on_reuse(first, store, tmp_path):
    """Under torchrun the main process looks up and broadcasts: a rank never reads a job folder the
    main process is still linking in, nor pairs its broadcasts with another job's (seen before)."""
    env = subprocess_env(HARNESS_PLUGIN_MODULES="toy", ACCELERATE_USE_CPU="1")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness"]
    out = tmp_path / "ranks"
    cmd = [*launch, "run", *TOY, "--output", str(out), "--job-store", str(store)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert all(reused(results).values())
    assert results["tasks"] == json.loads((first[0] / "results.json").read_text())["tasks"]


def _job(**config) -> JobSpec:
    cfg = replace(RunConfig(model="tiny"), **config)
    return JobSpec("stl", ("a",), 0, cfg, LoadSpec(seed=0, profile="smoke"), probe=("a", "b"), features=True)


def test_key_changes_with_what_the_job_computes(tmp_path):
    prints = {"s/train": "f1", "s/dev": "f2", "other/train": "f3"}
    base = JobStore(tmp_path, prints, {"a": "s", "b": "s"}, {"preset": "tiny"}, {"harness": "0.1.0", "a": "v1"})
    job = _job()
    key = base.key(job)
    assert key.startswith("stl-0-a-") and base.key(_job()) == key  # deterministic
    changed = [
        base.key(replace(job, seed=1)),
        base.key(_job(max_train_examples=100)),
        base.key(_job(learning_rate=0.5)),
        base.key(_job(keep_best=False)),  # features of the last epoch, not the best one
        base.key(replace(job, load=LoadSpec(seed=0, profile="smoke", options=(("noise", "0.2"),)))),
        replace(base, fingerprints={**prints, "s/train": "edited"}).key(job),
        replace(base, encoder={"preset": "tiny", "files_sha256": "x"}).key(job),
        replace(base, versions={"harness": "0.2.0", "a": "v1"}).key(job),
        replace(base, versions={"harness": "0.1.0", "a": "v2"}).key(job),
    ]
    assert key not in changed and len(set(changed)) == len(changed)
    # what the job does not read leaves its key alone
    assert replace(base, fingerprints={**prints, "other/train": "edited"}).key(job) == key
    assert base.key(_job(leaderboard="lb", report_to="tensorboard", job_store="elsewhere")) == key


def test_edited_data_file_changes_the_fingerprint(tmp_path):
    """check_data's fingerprints (what the store key hashes) change when a data file is edited in place."""
    from harness.data.cards import load_cards
    from harness.protocol.experiment import check_data
    from harness.protocol.plan import Plan

    (tmp_path / "t.toml").write_text(
        'name = "t"\nproblem_type = "single_label_classification"\nlabels = ["neg", "pos"]\n'
        'text_fields = ["text"]\nmetrics = ["accuracy"]\n[data]\nformat = "csv"\n'
        '[data.splits]\ntrain = "train.csv"\ndev = "dev.csv"\n'
    )
    (tmp_path / "dev.csv").write_text("text,label\nok,neg\nfine,pos\n")
    train = tmp_path / "train.csv"
    train.write_text("text,label\ngood,pos\nbad,neg\n")
    (task,) = load_cards(tmp_path)
    cfg = RunConfig(model="tiny")
    plan = Plan(("t",), ("t",), (0,), ("stl",), (), cfg, LoadSpec(data_dir=str(tmp_path)))

    class OneProcess:
        main_process_first = staticmethod(contextlib.nullcontext)

    _, _, before = check_data(plan, {"t": task}, cfg, OneProcess())
    assert set(before) == {"task:t/train", "task:t/dev"}
    train.write_text("text,label\ngood,neg\nbad,pos\n")  # same size, labels flipped
    _, _, after = check_data(plan, {"t": task}, cfg, OneProcess())
    assert after["task:t/train"] != before["task:t/train"] and after["task:t/dev"] == before["task:t/dev"]


def test_changed_seed_retrains_and_none_disables_the_store(first, store, tmp_path, toy_env):
    entries = sorted(p.name for p in store.iterdir())
    results = run(tmp_path / "seed1", store, "--set", "seed=1")
    assert not any(reused(results).values())  # other seed: every job trained
    assert len([p for p in store.iterdir() if not p.name.startswith(".")]) == 8  # and published
    results = run(tmp_path / "off", "none")
    assert not any(reused(results).values())  # the store holds these jobs, but is off
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith(".")) != entries  # seed 1 added
    assert not list((tmp_path / "off").glob("jobs/*/reused.json"))


def test_half_written_entries_are_ignored_and_retrained(first, store, tmp_path, toy_env, capsys):
    entry = next(store.glob("stl-0-toy.size-*"))
    # a killed writer: a temporary folder, and (by hand) an entry missing its result
    shutil.copytree(entry, store / ".tmp" / f"{entry.name}.killed")
    entry.chmod(0o755)
    (entry / "result.json").unlink()
    (store / ".locks" / f"{entry.name}.lock").unlink()  # made again below
    old_mask = os.umask(0o002)  # a store shared by a group
    try:
        results = run(tmp_path / "run2", store)
    finally:
        os.umask(old_mask)
    retrained = [k for k, source in reused(results).items() if source is None]
    assert len(retrained) == 1 and retrained[0].startswith("stl-0-toy.size-")
    assert jobstore.read_entry(entry) is not None  # the retrained job replaced the damaged entry
    # said once, at lookup; not again when the new entry replaces it
    assert capsys.readouterr().err.count("is damaged or of another version") == 1
    # the group sharing the store can read the new entry and take its lock (mkdtemp's 0700 and
    # filelock's 0644 would lock them out)
    assert entry.stat().st_mode & 0o777 == 0o775
    assert (store / ".locks" / f"{entry.name}.lock").stat().st_mode & 0o777 == 0o664
    assert main(["cache", "gc", "--job-store", str(store)]) == 0  # no limits: only dead writers' folders
    assert not list((store / ".tmp").iterdir()) and len(jobstore.list_entries(store)) == 4


def test_two_runs_needing_the_same_jobs_train_each_once(tmp_path):
    store = tmp_path / "jobs"
    env = subprocess_env(HARNESS_PLUGIN_MODULES="toy")
    cmd = [sys.executable, "-m", "harness", "run", *TOY, "--job-store", str(store)]
    procs = [
        subprocess.Popen([*cmd, "--output", str(tmp_path / f"r{i}")], env=env, stderr=subprocess.PIPE, text=True)
        for i in (1, 2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    one, two = (json.loads((tmp_path / f"r{i}" / "results.json").read_text()) for i in (1, 2))
    assert one["jobs"].keys() == two["jobs"].keys() and len(one["jobs"]) == 4
    for key in one["jobs"]:  # trained by exactly one run, reused by the other
        assert (one["jobs"][key].get("reused_from") is None) != (two["jobs"][key].get("reused_from") is None)
    assert one["tasks"] == two["tasks"]
    assert len(jobstore.list_entries(store)) == 4 and not list((store / ".tmp").iterdir())
    assert sum(e.count(": reused from store") for e in errs) == 4  # one line per reused job
    reusing = sum(any(job.get("reused_from") for job in r["jobs"].values()) for r in (one, two))
    assert sum(e.count("jobs reused from store") for e in errs) == reusing  # and the summary of a run that reused


def test_cache_ls_and_gc(first, store, capsys):
    assert main(["cache", "ls", "--job-store", str(store), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(listing["entries"]) == 4 and listing["total_size"] == sum(e["size"] for e in listing["entries"])
    assert {e["kind"] for e in listing["entries"]} == {"stl", "mtl"} and listing["entries"][0]["harness"]
    old = next(store.glob("stl-0-toy.colour-*"))
    os.utime(old, (time.time() - 10 * 86400,) * 2)  # unused for 10 days
    assert main(["cache", "gc", "--job-store", str(store), "--older-than", "5", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == [old.name] and old.exists()  # dry run: kept
    assert main(["cache", "gc", "--job-store", str(store), "--older-than", "5"]) == 0
    assert f"removed {old.name}" in capsys.readouterr().err and not old.exists()
    busy = next(store.glob("mtl-*"))
    with key_lock(store, busy.name):  # another process is reading or writing it
        assert main(["cache", "gc", "--job-store", str(store), "--max-size", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["in_use"] == [busy.name] and len(out["removed"]) == 2 and out["remaining"] > 0
    assert [e.key for e in jobstore.list_entries(store)] == [busy.name]


def test_unwritable_store_and_bad_sizes_are_one_line_errors(tmp_path, capsys, toy_env):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", *TOY, "--output", str(tmp_path / "r"), "--job-store", str(blocker / "jobs")]) == 2
    assert "cannot write there" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["cache", "gc", "--job-store", str(tmp_path), "--max-size", "lots"]) == 2
    assert "expected a size such as 500M" in capsys.readouterr().err
    assert jobstore.parse_size("1.5k") == 1536 and jobstore.parse_size("2G") == 2 * 1024**3
    for command in ("ls", "gc"):  # a mistyped store is not an empty one
        assert main(["cache", command, "--job-store", str(blocker)]) == 2
        assert f"job store {blocker}: not a folder" in capsys.readouterr().err
        assert main(["cache", command, "--job-store", str(tmp_path / "typo")]) == 2
        assert "no such folder; check the path" in capsys.readouterr().err


def test_an_entry_with_damaged_features_is_not_reused(first, store, tmp_path, caplog):
    """A cut ``features.npy`` (found by a fresh user: every run reusing the entry died in np.load) or
    one holding Python objects makes the entry incomplete: the job is trained again, nothing unpickled."""
    import numpy as np

    entry = next(store.glob("stl-0-toy.size-*"))
    copy = tmp_path / entry.name
    shutil.copytree(entry, copy)
    result = jobstore.read_entry(copy)
    assert result is not None and result.features
    features = copy / result.features
    whole = features.read_bytes()
    features.write_bytes(whole[: len(whole) // 2])
    assert jobstore.read_entry(copy) is None
    np.save(features, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert jobstore.read_entry(copy) is None
    assert sum("is incomplete; the job is trained again" in r.getMessage() for r in caplog.records) == 2
    features.write_bytes(whole)
    assert jobstore.read_entry(copy) is not None
