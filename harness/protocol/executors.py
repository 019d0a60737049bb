"""Executors: where and when the jobs of a plan run (``--executor``, config key ``executor``).

- ``SequentialExecutor``: one job after another in this process (all ranks together under a
  distributed launch). The default.
- ``LocalExecutor``: ``workers`` jobs at once in worker processes of this machine
  (``concurrent.futures.ProcessPoolExecutor``, "spawn"): one GPU each where GPUs exist; without
  GPUs the cores are split between the workers (``torch.set_num_threads``).
- ``RayExecutor``: each job a Ray task with its resource request (``job_cpus``, one GPU where
  the cluster has GPUs, ``job_memory_gb``), rerun by Ray when its worker dies (``job_retries``).

Every executor takes a batch of ``(stage, JobSpec)``, reuses the finished jobs
(``finished_job``: in the run directory or the job store), publishes each result
(``publish_job``), records each failure (``record_failure``) and goes on with the other jobs;
``check`` then raises ``JobsFailed`` naming the failed ones. Only the main process calls those
four (and so touches the job store): a worker runs ``execute`` into the job's folder and
returns the ``JobResult``; the main process publishes it from that folder.

A job is claimed (its store key held) when it is about to start, not before: two runs sharing a
store split the jobs between them. A job another run is training (``JobInProgress``) is put
back and asked about again later, never waited for while this run holds a key (two runs
waiting for each other's keys would deadlock); once this run runs nothing, it waits for such a
job, then reuses it (or trains it, if the other run failed it).

One ``RunProgress`` shows the whole run on the main process; workers report through a queue
(``QueueProgress``) that the main process replays into it.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.errors import ConfigError, HarnessError, JobsFailed
from harness.protocol.execute import RESULT_FILE, execute, finished_job, publish_job, record_failure, release_job
from harness.protocol.jobstore import JobInProgress, JobStore, reused_from
from harness.protocol.plan import JobSpec
from harness.protocol.results import JobResult
from harness.training.progress import JobProgress, RunProgress

log = logging.getLogger("harness")


@dataclass(frozen=True)
class Pending:
    """A job to run: its spec, folder, display label and estimated cost."""

    job: JobSpec
    job_dir: Path
    label: str
    cost: float

    @property
    def key(self) -> str:
        return self.job_dir.name


@dataclass(frozen=True)
class Failure:
    """A job that failed in this invocation: its one-line error and the file that records it."""

    label: str
    error: str
    path: Path

    def line(self) -> str:
        return f"{self.label}: {self.error} (see {self.path})"


def one_line(exc: BaseException) -> str:
    """The first line of an error, after its type (a ``HarnessError``'s message says it all)."""
    text = str(exc).strip().splitlines()
    if isinstance(exc, HarnessError) and text:
        return text[0]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Executor:
    """What every executor shares: reuse, claims on the job store, labels, progress, publication and failures.

    ``poll``: seconds between asking again about the jobs another run is training, while this run
    has jobs running; None: only once this run runs nothing (then it waits for them).
    """

    poll: float | None = 2.0

    def __init__(
        self, run_dir: Path, resume: bool, units: Any, main: bool = True, store: JobStore | None = None
    ) -> None:
        self.run_dir, self.resume, self.units, self.store = run_dir.resolve(), resume, units, store
        self.progress = RunProgress() if main else None
        self.failures: list[Failure] = []
        self.pending: dict[str, Pending] = {}  # claimed (store key held), not yet published or failed
        self.held: list[Pending] = []  # jobs another run is training: asked about again later
        self.noted: set[str] = set()  # held jobs already logged as such
        self.asked = 0.0  # when the held jobs were last asked about (time.monotonic)

    def run(self, batch: Sequence[tuple[str, JobSpec]]) -> dict[str, JobResult]:
        """Run the jobs of ``batch`` (stage, spec) not finished before; their results by key, in ``batch``'s
        order (failed ones left out: see ``failures``)."""
        first: dict[str, tuple[str, JobSpec]] = {}
        for stage, job in batch:  # a job listed twice (a pair equal to the all-task group) runs once
            first.setdefault(job.key(), (stage, job))
        unique = list(first.values())
        costs = [self.units(job) for _, job in unique]
        if self.progress is not None:
            self.progress.add_jobs(costs)
        results: dict[str, JobResult] = {}
        todo: deque[Pending] = deque()
        for i, ((stage, job), cost) in enumerate(zip(unique, costs, strict=True), 1):
            label = f"{stage} [{i}/{len(unique)}] {job.describe()}"
            todo.append(Pending(job, self.run_dir / "jobs" / job.key(), label, cost))
        self._run(todo, results)
        assert not todo and not self.held and not self.pending, "an executor left jobs of the batch behind"
        return {key: results[key] for key in first if key in results}  # plan order, whatever finished first

    def _run(self, todo: deque[Pending], results: dict[str, JobResult]) -> None:
        """Run the jobs of ``todo``, taking them with ``_take`` until it returns none and none is running."""
        raise NotImplementedError

    def _take(self, todo: deque[Pending], results: dict[str, JobResult], free: int, idle: bool) -> list[Pending]:
        """Up to ``free`` jobs to start now, each claimed (``finished_job``: its store key held).

        Jobs come from ``todo`` in order; a finished one (run directory or store) is reused into
        ``results``; one another run is training is moved to ``held``, asked about again before
        ``todo`` every ``poll`` seconds. ``idle``: this run runs no job and holds no key; with
        ``todo`` empty it then waits for a held job, which cannot deadlock (it holds nothing
        another run could wait for). An empty list with ``idle`` means the batch is done.
        """
        if self.held and self.poll is not None and time.monotonic() - self.asked >= self.poll:
            self.asked = time.monotonic()
            todo.extendleft(reversed(self.held))
            self.held = []
        taken: list[Pending] = []
        while len(taken) < free and (todo or (self.held and idle and not taken)):
            wait = not todo
            item = todo.popleft() if todo else self.held.pop(0)
            if self._claim(item, results, wait):
                taken.append(item)
        return taken

    def _claim(self, item: Pending, results: dict[str, JobResult], wait: bool) -> bool:
        """True when this run is to train ``item`` (its store key now held); False when it was reused
        (into ``results``) or another run is training it (moved to ``held``)."""
        try:
            done = finished_job(item.job, item.job_dir, self.store, wait=wait)
        except JobInProgress:
            if item.key not in self.noted:
                self.noted.add(item.key)
                log.info("%s: another run is training it; asking again later", item.label)
            if not self.held:
                self.asked = time.monotonic()  # asked just now: again in ``poll`` seconds
            self.held.append(item)
            return False
        if done is None:
            self.pending[item.key] = item
            return True
        source = reused_from(item.job_dir)
        if source is not None:
            log.info("%s: reused from store %s", item.label, source)
        else:
            log.info("%s: finished before, reusing %s", item.label, item.job_dir / RESULT_FILE)
        results[item.key] = done
        if self.progress is not None:
            self.progress.skip_job(item.cost)
        return False

    def _started(self, key: str) -> None:
        item = self.pending.get(key)
        if item is None:  # a worker's report that came after its job's result: nothing to show
            return
        log.info("%s", item.label)
        if self.progress is not None:
            self.progress.start_job(item.label, item.cost, item.job.config.epochs, key)

    def _finished(self, item: Pending, result: JobResult, results: dict[str, JobResult], publish: bool = True) -> None:
        if publish:
            publish_job(item.job, item.job_dir, result, self.store)
        results[item.key] = result
        self.pending.pop(item.key, None)
        if self.progress is not None:
            self.progress.finish_job(item.key)

    def _failed(self, item: Pending, error: str, trace: str = "") -> None:
        path = record_failure(item.job, item.job_dir, error, trace, self.store)
        log.error("%s failed: %s", item.label, error)
        self.failures.append(Failure(item.label, error, path))
        self.pending.pop(item.key, None)
        if self.progress is not None:
            self.progress.finish_job(item.key, failed=True)

    def _replay(self, message: tuple[Any, ...]) -> None:
        """A worker's progress report (``QueueProgress``), into the run's display."""
        key, kind, *args = message
        if kind == "start":
            self._started(key)
        elif self.progress is not None and key in self.progress.running:
            view = self.progress.job(key)
            if kind == "phase":
                view.phase(*args)
            elif kind == "advance":
                view.advance(*args)
            elif kind == "resume":
                view.resume(*args)

    def check(self) -> None:
        """Raise ``JobsFailed`` naming every job that failed so far, in one line (each was also logged as it failed)."""
        if self.failures:
            lines = "; ".join(f.line() for f in self.failures)
            raise JobsFailed(
                f"{len(self.failures)} job(s) failed; the others finished: {lines}. Fix the cause and continue "
                f"with --output {self.run_dir} --resume (only the missing jobs run)"
            )

    def close(self) -> None:
        """Release the store keys of jobs claimed but neither published nor failed (an interrupted
        run: another run may train them), and close the progress display."""
        for item in self.pending.values():
            release_job(item.job, self.store)
        self.pending.clear()
        self.held.clear()
        if self.progress is not None:
            self.progress.close()


class SequentialExecutor(Executor):
    """Runs jobs one after another in this process (all ranks together under a distributed launch).

    With ``threads`` (config ``job_cpus``), jobs run with that many torch threads. A failed job
    is recorded and the next one runs; under a distributed launch a job's error
    stops the run instead (the ranks must stay in step). It holds at most one store key, and asks
    about a job another run is training only once it has run the others (``poll`` None: no
    decision depends on a clock, so every rank of a launch takes the same jobs in the same order).
    """

    poll = None

    def __init__(
        self,
        run_dir: Path,
        resume: bool,
        registries: Any,
        acc: Any,
        units: Any,
        threads: int = 0,
        store: JobStore | None = None,
    ) -> None:
        super().__init__(run_dir, resume, units, acc.is_main_process, store)
        self.registries, self.acc, self.threads = registries, acc, threads

    def _run(self, todo: deque[Pending], results: dict[str, JobResult]) -> None:
        from harness.core.trackers import run_tracking_dir

        if self.threads:
            import torch

            torch.set_num_threads(self.threads)  # as a worker would: the same reductions, the same floats
        while taken := self._take(todo, results, 1, idle=True):
            item = taken[0]
            self._started(item.key)
            progress = self.progress.job(item.key) if self.progress is not None else JobProgress()
            try:
                result = execute(
                    item.job,
                    item.job_dir,
                    resume=self.resume,
                    progress=progress,
                    registries=self.registries,
                    tracking_dir=run_tracking_dir(self.run_dir, item.job.config.report_to),
                )
            except Exception as exc:  # noqa: BLE001 -- a failed job is recorded; the other jobs go on
                if self.acc.num_processes > 1:
                    raise  # its store key is released by ``close``
                self._failed(item, one_line(exc), traceback.format_exc())
                continue
            self.acc.wait_for_everyone()
            self._finished(item, result, results, publish=self.acc.is_main_process)
            self.acc.wait_for_everyone()


class QueueProgress(JobProgress):
    """A worker's ``JobProgress``: reports go to the main process through ``queue`` (its ``put``),
    steps gathered for ``every`` seconds, as tuples ``(key, kind, *args)``."""

    def __init__(self, queue: Any, key: str, every: float = 0.5) -> None:
        self.queue, self.key, self.every = queue, key, every
        self.rows, self.steps, self.train, self.last = 0, 0, True, time.monotonic()
        self._send("start")

    def _send(self, *message: Any) -> None:
        send = getattr(self.queue, "send", None)
        (send or self.queue.put)((self.key, *message))

    def phase(self, description: str, batches: int) -> None:
        self.flush()
        self._send("phase", description, batches)

    def advance(self, rows: int, train: bool) -> None:
        if self.steps and train != self.train:
            self.flush()
        self.rows, self.steps, self.train = self.rows + rows, self.steps + 1, train
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def resume(self, epochs_done: int) -> None:
        self.flush()
        self._send("resume", epochs_done)

    def flush(self) -> None:
        if self.steps:
            self._send("advance", self.rows, self.train, self.steps)
        self.rows, self.steps, self.last = 0, 0, time.monotonic()


def run_in_worker(
    job: JobSpec, job_dir: Path, resume: bool, tracking_dir: Path | None, threads: int, queue: Any
) -> JobResult:
    """``execute`` in a worker process with ``threads`` torch threads, its progress sent through ``queue``."""
    import torch

    torch.set_num_threads(threads)
    progress = QueueProgress(queue, job.key())
    try:
        return execute(job, job_dir, resume=resume, progress=progress, tracking_dir=tracking_dir)
    finally:
        progress.flush()


def job_threads(workers: int) -> int:
    """Torch threads per job when ``workers`` jobs share this machine's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def check_executor(cfg: RunConfig, num_processes: int) -> None:
    """Refuse an executor that cannot run here, before anything is written.

    ``local`` and ``ray`` run each job in a process of its own on one device; under a
    distributed launch (several processes already) they are refused: a job's several GPUs come
    from the launch, with the sequential executor.
    """
    if cfg.executor != "sequential" and num_processes > 1:
        raise ConfigError(
            f"--executor {cfg.executor} runs each job in its own worker process and cannot run under a distributed "
            f"launch ({num_processes} processes): drop the launcher (torchrun, accelerate launch), or keep it with "
            "--executor sequential (each job on all the launched processes)"
        )
    if cfg.workers and cfg.executor != "local":
        raise ConfigError(
            f"--workers {cfg.workers} (config key workers) is for --executor local; with --executor {cfg.executor} "
            + (
                "each job asks Ray for job_cpus CPUs (--set job_cpus=N) and Ray runs as many as fit"
                if cfg.executor == "ray"
                else "jobs run one at a time: add --executor local, or drop --workers"
            )
        )
    if cfg.ray_address and cfg.executor != "ray":
        raise ConfigError(f"--ray-address {cfg.ray_address} is for --executor ray: add --executor ray, or drop it")
    if cfg.executor == "local":
        cores = job_threads(1)
        if cfg.workers > cores:
            log.warning(
                "--workers %d on %d CPU cores: the workers share the cores (%d thread each) and each loads its "
                "data and model; more workers than cores rarely helps",
                cfg.workers,
                cores,
                max(1, cores // cfg.workers),
            )
    if cfg.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--executor ray needs Ray: pip install 'harness[ray]' (or pip install ray)")
        check_ray_address(cfg.ray_address)


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """``ConfigError`` when ``address`` (``HOST:PORT``, ``ray://HOST:PORT``) cannot be reached within
    ``timeout`` seconds: Ray itself would retry for minutes. ``""`` (start a local Ray) and
    ``auto`` (the cluster this machine belongs to) are left to Ray."""
    import socket

    if not address or address in ("auto", "local"):
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT (the head's GCS), ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"--ray-address {address}: cannot reach {host}:{port} ({exc.strerror or exc}); start the head with "
            "`ray start --head` there, check the address, or drop --ray-address for a local Ray"
        ) from None
