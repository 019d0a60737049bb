"""Executors: the same results in this process, in worker processes and on Ray; failures, retries, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.config import PROTOCOL_KEYS, RESUMABLE_KEYS, RunConfig
from harness.errors import ConfigError
from harness.protocol.execute import publish_job
from harness.protocol.executors import Executor, QueueProgress, check_executor
from harness.protocol.jobstore import JobStore
from harness.protocol.plan import JobSpec
from harness.protocol.results import JobResult
from harness.training.progress import RunProgress
from tests.conftest import FIXTURE_PLUGINS, ROOT

# the whole protocol on the toy tasks, small: 3 STL + init + all + 3 pairs (+ groups), one seed
TOY = [
    *("--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--pairs"),
    *("--set", "epochs=2", "--set", "max_train_examples=96", "--set", "max_eval_examples=48"),
    *("--set", "probe_examples=32", "--set", "observe_every=2"),
    # one torch thread per job in every executor: the same float reductions, bit-identical results
    *("--set", "job_cpus=1"),
]
FAULTY = ["--tasks", "toy.colour,faulty.colour", "--profile", "smoke", "--set", "epochs=1", "--set", "job_cpus=1"]


def test_execution_keys_change_neither_jobs_nor_resume():
    cfg = RunConfig()
    for key in ("executor", "workers", "ray_address", "job_cpus", "job_memory_gb", "job_retries"):
        assert key in PROTOCOL_KEYS and key in RESUMABLE_KEYS
    changed = dataclasses.replace(cfg, executor="ray", workers=4, ray_address="auto", job_cpus=2)
    assert changed.training_hash() == cfg.training_hash()
    with pytest.raises(ConfigError, match="executor must be one of sequential, local, ray"):
        RunConfig(executor="threads")


def test_worker_executors_are_refused_under_a_distributed_launch():
    check_executor(RunConfig(executor="local"), 1)
    check_executor(RunConfig(), 2)  # sequential: each job on all the launched processes
    with pytest.raises(ConfigError, match="cannot run under a distributed launch \\(2 processes\\)"):
        check_executor(RunConfig(executor="local"), 2)


def test_flags_of_another_executor_and_an_unreachable_ray_head_are_refused_at_once():
    import socket

    with pytest.raises(ConfigError, match="--workers 2 \\(config key workers\\) is for --executor local"):
        check_executor(RunConfig(workers=2), 1)
    with pytest.raises(ConfigError, match="asks Ray for job_cpus CPUs"):
        check_executor(RunConfig(executor="ray", workers=2), 1)
    with pytest.raises(ConfigError, match="--ray-address auto is for --executor ray"):
        check_executor(RunConfig(executor="local", ray_address="auto"), 1)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_executor(RunConfig(executor="ray", ray_address="nowhere"), 1)
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot reach 127.0.0.1:{port}.*ray start --head"):
            check_executor(RunConfig(executor="ray", ray_address=f"127.0.0.1:{port}"), 1)  # before Ray is asked


class _Recording(Executor):
    def __init__(self, run_dir: Path, store: JobStore | None = None) -> None:
        super().__init__(run_dir, resume=False, units=lambda job: 10.0, store=store)
        self.ran: list[str] = []

    def _run(self, todo, results):
        while taken := self._take(todo, results, 1, idle=True):
            item = taken[0]
            self._started(item.key)
            self.ran.append(item.key)
            self._finished(item, _result(item.job), results)


def _result(job: JobSpec) -> JobResult:
    return JobResult(job.kind, list(job.tasks), job.seed, 1, 1, {}, {}, {}, [], {})


def test_a_batch_runs_each_job_once_and_reuses_finished_jobs(tmp_path):
    cfg = RunConfig()
    stl, pair = JobSpec("stl", ("a",), 0, cfg), JobSpec("mtl", ("a", "b"), 0, cfg)
    first = _Recording(tmp_path)
    results = first.run([("stl", stl), ("all", pair), ("pairs", pair)])  # the pair is the all-task group
    assert first.ran == [stl.key(), pair.key()] and set(results) == {stl.key(), pair.key()}
    again = _Recording(tmp_path)
    assert set(again.run([("stl", stl), ("all", pair)])) == {stl.key(), pair.key()} and again.ran == []
    assert again.progress is not None and again.progress.jobs_done == 2
    first.close()
    again.close()


def test_a_job_another_run_trains_is_asked_again_then_reused(tmp_path):
    """Held by another run: put back, the other jobs run first, then (holding no key) the run waits
    for it and reuses what the other run published; it never trains it itself."""
    import threading

    cfg = RunConfig()
    held, free = JobSpec("stl", ("a",), 0, cfg), JobSpec("stl", ("b",), 0, cfg)
    store = JobStore(tmp_path / "store", streams={"a": "x", "b": "x"})
    other = tmp_path / "other" / "jobs" / held.key()
    executor = _Recording(tmp_path / "run", store)
    claimed = threading.Event()

    def other_run() -> None:  # another thread: filelock refuses a second lock of one file in one thread
        assert store.lookup(held, other, wait=False) is None  # the other run claims the job
        claimed.set()
        while free.key() not in executor.ran:  # this run goes on with its other job meanwhile
            time.sleep(0.05)
        time.sleep(0.3)
        publish_job(held, other, _result(held), store)  # the other run publishes: its key is released

    thread = threading.Thread(target=other_run)
    thread.start()
    claimed.wait()
    results = executor.run([("stl", held), ("stl", free)])
    thread.join()
    assert executor.ran == [free.key()] and list(results) == [held.key(), free.key()]  # plan order
    assert json.loads((tmp_path / "run" / "jobs" / held.key() / "reused.json").read_text())["store_key"]
    assert not executor.pending and not executor.held
    executor.close()


def test_worker_progress_reaches_the_run_display():
    """A worker's reports, sent as tuples through a queue, replayed into the main process's RunProgress."""
    sent: list[tuple] = []

    class Queue:
        put = sent.append

    worker = QueueProgress(Queue(), "stl-0-a", every=3600.0)
    worker.phase("epoch 1/2 train", 4)
    for _ in range(3):
        worker.advance(rows=8, train=True)
    worker.phase("eval dev", 1)  # gathered steps go before a new phase
    worker.advance(rows=4, train=False)
    worker.flush()
    run = RunProgress(live=False, interval=3600.0)
    executor = Executor(Path("."), False, lambda job: 0.0)
    executor.progress = run
    run.add_jobs([100.0])
    executor.pending["stl-0-a"] = type("P", (), {"label": "stl [1/1] STL a", "cost": 100.0, "job": _Job()})()
    for message in sent:
        executor._replay(message)
    job = run.running["stl-0-a"]
    assert (job.phase, job.steps, job.phase_steps) == ("eval dev", 1, 1)
    assert run.units_done == 3 * 8 * 3 + 4  # training rows count thrice
    assert run.status().startswith("jobs 0/1 · stl [1/1] STL a · eval dev 1/1 · elapsed")


class _Job:
    config = RunConfig(epochs=2)


def _comparable(run: Path) -> dict:
    """results.json without wall-clock times (seconds, and costs measured in seconds)."""
    return _strip(json.loads((run / "results.json").read_text()))


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if "second" not in k and "cost" not in k}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _pids(run: Path) -> set[int]:
    return {json.loads(p.read_text())["pid"] for p in (run / "jobs").glob("*/result.json")}


@pytest.fixture
def plugin_env(monkeypatch):
    """The fixture plugins importable by this process and every worker (spawned, or Ray's)."""
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy,faulty")
    path = os.pathsep.join([str(FIXTURE_PLUGINS), str(ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def local_ray(plugin_env):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_sequential_local_and_ray_give_identical_results(tmp_path, local_ray):
    runs = {name: tmp_path / name for name in ("sequential", "local", "ray")}
    assert main(["run", *TOY, "--output", str(runs["sequential"])]) == 0
    assert main(["run", *TOY, "--output", str(runs["local"]), "--executor", "local", "--workers", "2"]) == 0
    assert main(["run", *TOY, "--output", str(runs["ray"]), "--executor", "ray"]) == 0
    reference = _comparable(runs["sequential"])
    assert reference["predictors"]["cka_linear"]["matrix"] and reference["pair_gaps"]
    for name in ("local", "ray"):
        assert _comparable(runs[name]) == reference, name  # bit-identical: metrics, gaps, matrices, scores
    assert _pids(runs["sequential"]) == {os.getpid()}
    for name in ("local", "ray"):
        pids = _pids(runs[name])
        assert len(pids) >= 2 and os.getpid() not in pids, (name, pids)  # really in other processes


@pytest.mark.slow
def test_local_runs_sharing_a_job_store_train_each_job_once(tmp_path, plugin_env):
    """Workers write into the job folders; the main process publishes them: a second run with
    its own run directory reuses every job of the first and gives the same results."""
    store = tmp_path / "jobs"
    runs = [tmp_path / "one", tmp_path / "two"]
    args = ["run", *TOY, "--executor", "local", "--workers", "2"]
    for run in runs:
        assert main([*args, "--output", str(run), "--job-store", str(store)]) == 0
    one, two = (json.loads((run / "results.json").read_text()) for run in runs)
    assert len(one["jobs"]) == 8 and not any("reused_from" in job for job in one["jobs"].values())  # 3+1+1+3
    assert all(Path(job["reused_from"]).parent == store.resolve() for job in two["jobs"].values())
    assert not list((runs[1] / "jobs").glob("*/state"))  # trained nothing; its saved models are the store's:
    models = [[b.parent.name for b in (run / "jobs").glob("*/best")] for run in runs]
    assert sorted(models[0]) == sorted(models[1]) and all(
        (runs[1] / "jobs" / key / "best" / "model.safetensors").stat().st_nlink >= 3 for key in models[1]
    )  # hard links: the first run's file, the store's, the second run's
    entries = [p for p in store.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 8 and len(list(store.glob("*/features.npy"))) == 4  # 3 STL + init: what workers wrote
    for results in (one, two):
        for job in results["jobs"].values():
            job.pop("reused_from", None)
    assert _strip(two) == _strip(one)  # the same metrics, gaps and predictor matrices


@pytest.fixture
def fault_dir(tmp_path, monkeypatch, plugin_env):
    folder = tmp_path / "fault"
    folder.mkdir()
    (folder / "main.pid").write_text(str(os.getpid()))
    monkeypatch.setenv("HARNESS_FAULT_DIR", str(folder))
    return folder


@pytest.mark.slow
def test_a_failed_job_is_recorded_the_others_finish_and_resume_runs_only_it(tmp_path, fault_dir, capsys):
    run = tmp_path / "run"
    (fault_dir / "raise").touch()
    args = ["run", *FAULTY, "--stages", "stl,all", "--output", str(run), "--executor", "local", "--workers", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "2 job(s) failed; the others finished" in err
    planted = "metric 'fault' of plugin 'faulty' raised RuntimeError: planted failure"
    assert f"STL faulty.colour seed 0: {planted}" in err
    assert f"MTL toy.colour+faulty.colour seed 0 (+ gradient/TAG observers): {planted}" in err
    jobs = {p.name.split("-")[2]: p for p in (run / "jobs").iterdir()}
    assert (jobs["toy.colour"] / "result.json").exists()
    for name in ("faulty.colour", "toy.colour+faulty.colour"):
        error = json.loads((jobs[name] / "error.json").read_text())
        assert error["error"] == planted and "Traceback" in error["traceback"]
        assert not (jobs[name] / "result.json").exists()
    assert not (run / "results.json").exists()
    finished = (jobs["toy.colour"] / "result.json").stat().st_mtime_ns

    (fault_dir / "raise").unlink()
    assert main([*args, "--resume"]) == 0
    assert (jobs["toy.colour"] / "result.json").stat().st_mtime_ns == finished  # not run again
    for name in ("faulty.colour", "toy.colour+faulty.colour"):
        assert (jobs[name] / "result.json").exists() and not (jobs[name] / "error.json").exists()
    assert (run / "results.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("retries", [1, 0])
def test_a_killed_worker_job_is_retried_or_reported(tmp_path, fault_dir, retries, capsys):
    (fault_dir / "kill").touch()  # the first worker to evaluate faulty.colour kills itself (SIGKILL)
    run = tmp_path / "run"
    args = ["run", *FAULTY, "--stages", "stl", "--output", str(run), "--executor", "local", "--workers", "2"]
    code = main([*args, "--set", f"job_retries={retries}"])
    assert not (fault_dir / "kill").exists()  # a worker really died
    if retries:
        assert code == 0
        assert len(list((run / "jobs").glob("*/result.json"))) == 2
    else:
        assert code == 2
        assert "STL faulty.colour seed 0: a worker process died (killed, or out of memory) on each of 1 tries" in (
            capsys.readouterr().err
        )


@pytest.mark.slow
def test_a_killed_ray_worker_job_is_retried(tmp_path, fault_dir, local_ray):
    (fault_dir / "kill").touch()
    run = tmp_path / "run"
    assert main(["run", *FAULTY, "--stages", "stl", "--output", str(run), "--executor", "ray"]) == 0
    assert not (fault_dir / "kill").exists()
    assert len(list((run / "jobs").glob("*/result.json"))) == 2


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
        for child in children:
            out |= {child, *_descendants(child)}
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_ctrl_c_stops_every_worker(tmp_path, signame):
    """Ctrl-C and SIGTERM stop the run cleanly (exit 130 / 143, how to resume); after SIGKILL of the
    main process its workers die too (PR_SET_PDEATHSIG): in every case no worker is left training."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import subprocess_env

    args = ["run", "--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl"]
    args += ["--set", "epochs=50", "--output", str(tmp_path / "run"), "--executor", "local", "--workers", "2"]
    env = subprocess_env(HARNESS_PLUGIN_MODULES="toy", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until both workers run a job
        lines.append(line)
        if sum("INFO stl [" in seen for seen in lines) >= 2:
            break
    workers = _descendants(proc.pid)
    assert len([p for p in workers if _alive(p)]) >= 2, "".join(lines)
    time.sleep(1.0)
    proc.send_signal(getattr(signal, signame))
    rest = proc.communicate(timeout=60)[1]
    if signame == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == {"SIGINT": 130, "SIGTERM": 143}[signame], rest
        assert "--resume" in rest  # how to continue
    deadline = time.monotonic() + 10  # multiprocessing's resource tracker leaves once its pipe closes
    while [p for p in workers if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in workers if _alive(p)}
    assert not left  # no orphan worker


def test_peak_memory_of_a_child_process_is_its_own_not_its_parents():
    """ru_maxrss survives fork and exec on Linux: a worker started by a large process would report
    the parent's size. peak_rss_mb reads the child's own high-water mark (VmHWM)."""
    import subprocess
    import sys

    from harness.protocol.execute import peak_rss_mb

    ballast = bytearray(400 * 2**20)  # 400 MiB, touched: resident in this process
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    parent = peak_rss_mb()
    code = "from harness.protocol.execute import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del ballast
    assert parent is not None and parent > 400
    assert 0 < child < parent - 300  # the child imported little; it did not inherit the parent's 400 MiB
