"""Executors with worker processes: ``LocalExecutor`` (a process pool here) and ``RayExecutor``.

Both use an existing engine for the scheduling, ``concurrent.futures`` or Ray, and differ only
in how a job reaches a worker and how its progress comes back. A worker process that dies
(killed, out of memory) loses its job: the job runs again up to ``job_retries`` times, then is
recorded as failed. Ctrl-C in the main process stops every worker before it returns.

Workers never touch the job store: they run ``execute`` into the job's folder (on a file system
the main process sees) and return the result, which the main process publishes.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.core.trackers import run_tracking_dir
from harness.errors import ConfigError, Terminated
from harness.protocol.executors import Executor, Pending, job_threads, one_line, run_in_worker
from harness.protocol.jobstore import JobStore
from harness.protocol.results import JobResult

log = logging.getLogger("harness")

_WORKER: dict[str, Any] = {}  # this worker process's queue and threads (set by _init_worker)


def _init_worker(queue: Any, threads: int, gpus: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the workers
    _die_with_parent()
    if gpus is not None:
        import os

        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())  # before torch initialises CUDA
    _WORKER.update(queue=queue, threads=threads)


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the main process dies, even by SIGKILL (``prctl``'s
    ``PR_SET_PDEATHSIG``), so no orphan worker goes on training into the run directory."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl in this libc: the worker ends with its pipe instead
        return


def _local_job(job: Any, job_dir: Path, resume: bool, tracking_dir: Path | None) -> JobResult:
    return run_in_worker(job, job_dir, resume, tracking_dir, _WORKER["threads"], _WORKER["queue"])


def _trace(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class LocalExecutor(Executor):
    """``workers`` jobs at once in worker processes of this machine ("spawn": no state inherited).

    Each worker takes one GPU (round robin) where GPUs exist; without GPUs the cores are split
    between the workers (``cores // workers`` torch threads each, or ``job_cpus``). ``workers``
    0: one per GPU, else 2. At most ``workers`` jobs are claimed at once: the ones running.
    """

    def __init__(self, run_dir: Path, resume: bool, units: Any, cfg: RunConfig, store: JobStore | None = None) -> None:
        import torch

        super().__init__(run_dir, resume, units, store=store)
        self.gpus = torch.cuda.device_count()
        self.workers = cfg.workers or self.gpus or 2
        self.threads = cfg.job_cpus or job_threads(self.workers)
        self.retries, self.report_to = cfg.job_retries, cfg.report_to
        log.info("local executor: %d workers, %d thread(s) each, %d GPU(s)", self.workers, self.threads, self.gpus)

    def _pool(self) -> tuple[Any, Any]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        queue, gpus = ctx.Queue(), None
        if self.gpus:
            gpus = ctx.Queue()
            for i in range(self.workers):
                gpus.put(i % self.gpus)
        pool = ProcessPoolExecutor(self.workers, ctx, initializer=_init_worker, initargs=(queue, self.threads, gpus))
        return pool, queue

    def _run(self, todo: deque[Pending], results: dict[str, JobResult]) -> None:
        attempts: dict[str, int] = {}
        again: list[Pending] = []  # claimed jobs whose worker died: run again in a new pool
        while True:
            pool, queue = self._pool()
            try:
                broken = self._drive(pool, queue, todo, again, attempts, results)
            except BaseException:
                _stop(pool)
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                queue.close()
            if not (broken and (todo or again or self.held)):
                return

    def _drive(
        self,
        pool: Any,
        queue: Any,
        todo: deque[Pending],
        again: list[Pending],
        attempts: dict[str, int],
        results: dict[str, JobResult],
    ) -> bool:
        """Feed ``pool`` until the batch is done (False) or a worker died and broke it (True)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        tracking = run_tracking_dir(self.run_dir, self.report_to)
        futures: dict[Any, Pending] = {}
        broken = False
        while True:
            if not broken:
                free = self.workers - len(futures)
                start, again[:] = again[:free], again[free:]
                start += self._take(todo, results, free - len(start), idle=not futures and not start)
                for item in start:
                    attempts.setdefault(item.key, 0)
                    futures[pool.submit(_local_job, item.job, item.job_dir, self.resume, tracking)] = item
            if not futures:
                return broken
            with _signals_deferred() as stop:  # Ctrl-C is raised after the wait, not inside it
                done, _ = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
            if stop:
                raise stop[0]
            self._drain(queue)
            for future in done:
                item = futures.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True  # every job of this pool fails so: the ones not lost for good run again
                    if self._lost(item, attempts):
                        again.append(item)
                except Exception as exc:  # noqa: BLE001 -- a failed job is recorded; the others go on
                    self._failed(item, one_line(exc), _trace(exc))
                else:
                    self._finished(item, result, results)

    def _lost(self, item: Pending, attempts: dict[str, int]) -> bool:
        """The pool broke under ``item``: True to run it again (it had not started, or has retries left)."""
        if self.progress is None or item.key not in self.progress.running:
            return True  # queued when another job's worker died: not its fault
        self.progress.requeue(item.key)
        attempts[item.key] += 1
        if attempts[item.key] <= self.retries:
            log.warning("%s: a worker process died; running the job again (retry %d)", item.label, attempts[item.key])
            return True
        tries = attempts[item.key]
        self._failed(item, f"a worker process died (killed, or out of memory) on each of {tries} tries")
        return False

    def _drain(self, queue: Any) -> None:
        import queue as queues

        while True:
            try:
                self._replay(queue.get_nowait())
            except queues.Empty:
                return


@contextlib.contextmanager
def _signals_deferred() -> Iterator[list[BaseException]]:
    """Within the block, SIGINT and SIGTERM only note their exception (``KeyboardInterrupt``,
    ``Terminated``) in the list yielded; the caller raises it after the block.

    Raised where the signal lands, a ``KeyboardInterrupt`` can leave futures' locks held inside
    ``concurrent.futures.wait`` (it acquires every future's condition before the ``with`` that
    releases them), and the pool's manager thread then waits for such a lock forever at exit: a
    run that hung after Ctrl-C (seen once in about twenty tries). Outside the main thread
    (no signal handlers there) this does nothing.
    """
    stop: list[BaseException] = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def note(signum: int, frame: object) -> None:
        if not stop:
            stop.append(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())

    before = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _stop(pool: Any) -> None:
    """Stop every worker process of ``pool`` now (Ctrl-C): queued jobs are dropped, running ones killed.

    ``ProcessPoolExecutor`` has no public way to stop running workers before Python 3.14
    (``terminate_workers``), hence its ``_processes``.
    """
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)


class _RayChannel:
    """Progress from a Ray task to the main process, without waiting.

    ``ray.util.queue.Queue.put`` waits for the queue actor (``ray.get``); Ray treats a task that
    waits as blocked and lends its CPU to another task, so more jobs ran at once than the
    cluster had CPUs (3 on 2). ``send`` calls the actor without waiting for it: one caller's
    calls to an actor run in order, so the reports keep theirs.
    """

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def send(self, message: tuple[Any, ...]) -> None:
        self.queue.actor.put_nowait.remote(message)


def _ray_job(
    job: Any, job_dir: Path, resume: bool, tracking_dir: Path | None, threads: int, queue: Any
) -> JobResult:  # pragma: no cover -- runs in a Ray worker
    return run_in_worker(job, job_dir, resume, tracking_dir, threads, _RayChannel(queue))


class RayExecutor(Executor):
    """Each job a Ray task: ``job_cpus`` CPUs (its torch threads; 1 when 0), one GPU where the cluster has
    GPUs, ``job_memory_gb`` of memory when set; Ray reruns a task whose worker died up to
    ``job_retries`` times (a job that raised is not rerun: it would raise again).

    Joins the cluster at ``ray_address``, or starts a local Ray (no dashboard) and stops it at
    ``close``. The job folders must be on a file system every node sees (the main process
    publishes a job to the store from its folder). Every job of a batch is submitted, and so
    claimed, at once: Ray (and an autoscaler) sees the whole demand.
    """

    def __init__(self, run_dir: Path, resume: bool, units: Any, cfg: RunConfig, store: JobStore | None = None) -> None:
        import ray
        from ray.util.queue import Queue

        super().__init__(run_dir, resume, units, store=store)
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(address=cfg.ray_address or None, include_dashboard=False, configure_logging=False)
            except ConnectionError as exc:
                raise ConfigError(f"--ray-address {cfg.ray_address}: cannot join the Ray cluster: {exc}") from None
        self.queue = Queue()
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        self.threads = cfg.job_cpus or 1
        options: dict[str, Any] = {"num_cpus": self.threads, "num_gpus": gpus, "max_retries": cfg.job_retries}
        if cfg.job_memory_gb:
            options["memory"] = int(cfg.job_memory_gb * 2**30)
        self.task = ray.remote(_ray_job).options(**options)
        self.retries, self.report_to = cfg.job_retries, cfg.report_to
        log.info("ray executor: %s, each job %s", ray.cluster_resources(), options)

    def _run(self, todo: deque[Pending], results: dict[str, JobResult]) -> None:
        import ray

        tracking = run_tracking_dir(self.run_dir, self.report_to)
        refs: dict[Any, Pending] = {}
        try:
            while True:
                for i in self._take(todo, results, len(todo) + len(self.held), idle=not refs):
                    refs[self.task.remote(i.job, i.job_dir, self.resume, tracking, self.threads, self.queue)] = i
                if not refs:
                    return
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.25)
                self._drain()
                for ref in ready:
                    item = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # the job raised
                        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                        self._failed(item, one_line(cause), str(exc))
                    except ray.exceptions.RayError as exc:  # its worker died, on every try
                        error = f"its Ray worker died on each of {self.retries + 1} tries: {one_line(exc)}"
                        self._failed(item, error, str(exc))
                    else:
                        self._finished(item, result, results)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise

    def _drain(self) -> None:
        n = self.queue.qsize()
        for message in self.queue.get_nowait_batch(n) if n else []:
            self._replay(message)

    def close(self) -> None:
        super().close()
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()
