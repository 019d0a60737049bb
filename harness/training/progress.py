"""Progress for people: rich on a terminal, plain log lines otherwise, nothing off the main process.

``track(iterable)`` wraps one loop (tokenization); ``RunProgress`` is the one live display of a
whole ``harness run`` (jobs, current job and phase, elapsed and remaining time), fed by the
training loop through the small ``JobProgress`` protocol.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("harness")


_live: list[object] = []  # the RunProgress whose live display is on: other bars stay quiet meanwhile


def track(iterable: Iterable[T], description: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    if not enabled or _live:
        yield from iterable
        return
    if total is None:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import Progress

        from harness.report.console import console

        with Progress(console=console, transient=True) as progress:
            yield from progress.track(iterable, total=total, description=description)
        return
    yield from _plain(iterable, description, total)


def _plain(iterable: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    """A line every ~25% of a long loop, one at the end of a short one; no carriage returns in CI logs."""
    start = time.perf_counter()
    level = logging.INFO if total is None or total >= 20 else logging.DEBUG  # short loops: one debug line
    marks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)} if total and total >= 20 else {total}
    count = 0
    for count, item in enumerate(iterable, 1):
        yield item
        if count in marks:
            log.log(level, "%s: %d/%d (%.1fs)", description, count, total, time.perf_counter() - start)
    if total is None:
        log.log(level, "%s: %d done (%.1fs)", description, count, time.perf_counter() - start)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


#: Cost units per example: a training row (forward + backward) costs about three evaluation rows.
TRAIN_UNITS, EVAL_UNITS = 3, 1


class JobProgress:
    """What the training loop reports: its phase and the rows it processed. This base ignores it all
    (a job run outside ``harness run``, or on a process other than the main one)."""

    def phase(self, description: str, batches: int) -> None:
        """A new phase of the current job (an epoch's training, one split's evaluation) of ``batches`` steps."""

    def advance(self, rows: int, train: bool) -> None:
        """One step done: ``rows`` examples over all processes, training or evaluation."""

    def resume(self, epochs_done: int) -> None:
        """The current job resumed with ``epochs_done`` epochs already trained."""


@dataclass
class _Running:
    """One running job's place in the display."""

    label: str
    units: float
    epoch_units: float
    counted: float = 0.0  # units of its rows counted so far (replaced by ``units`` when it finishes)
    phase: str = ""
    steps: int = 0
    phase_steps: int = 0
    task: Any = None  # its rich task id


class RunProgress(JobProgress):
    """Progress of a whole run: jobs done/running/queued/failed, each running job's phase (epoch and
    step), elapsed and remaining time.

    On a terminal, one live rich display (a bar for the run, one per running job); off a terminal,
    a plain log line every ``interval`` seconds. The remaining time is the remaining cost
    (examples per job and epoch, from the data check before training; a training row counts as
    three evaluation rows) at the rate measured so far in this invocation, all running jobs
    together, from the first job's start (not the data check before it). A finished job counts
    its whole estimated cost as done at the time it took (so early stopping, a job's loading
    time and a worker's start-up are in the rate); reused jobs and epochs trained by an earlier
    invocation count as done, not in the rate. Until a job has finished here, the remaining time
    is "estimating": the first steps of parallel workers, still loading, say little.

    Jobs are named by a ``key``; the ``JobProgress`` methods called on the run itself apply to
    the job started last (one job at a time), and ``job(key)`` is the ``JobProgress`` of one of
    several running jobs (what a worker's reports are replayed into).
    """

    def __init__(self, total_jobs: int = 0, live: bool | None = None, interval: float = 30.0) -> None:
        self.total_jobs, self.interval = total_jobs, interval
        self.live = sys.stderr.isatty() if live is None else live
        self.jobs_done, self.jobs_failed, self.units_done, self.units_total, self.units_measured = 0, 0, 0.0, 0.0, 0.0
        self.running: dict[str, _Running] = {}
        self.current = ""  # the job started last
        self.start = self.last_line = time.perf_counter()
        self.first_start: float | None = None  # when this invocation started its first job
        self.finished_here = 0  # jobs finished by this invocation (the rate is known after one)
        self._progress: Any = None
        self._run_task: Any = None

    def plan(self, job_units: list[float]) -> None:
        """The estimated cost of every job counted in ``total_jobs``, in order."""
        self.units_total += float(sum(job_units))
        if self._progress is not None:
            self._progress.update(self._run_task, total=max(self.units_total, 1.0))
        elif self.live:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            from harness.report.console import console

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=console,
                transient=True,
            )
            self._run_task = self._progress.add_task("run", total=max(self.units_total, 1.0), eta="")
            self._progress.start()
            _live.append(self)

    def add_jobs(self, job_units: list[float]) -> None:
        """More jobs, planned while the run goes (a later stage's), with their estimated costs."""
        self.total_jobs += len(job_units)
        self.plan(job_units)

    def skip_job(self, units: float) -> None:
        """A job finished before (reused): its cost counts as done."""
        self.jobs_done += 1
        self.units_done += units
        self._refresh()

    def start_job(self, label: str, units: float, epochs: int, key: str = "") -> None:
        if key in self.running:  # started again (its worker died)
            self.requeue(key)
        job = _Running(label, units, units / max(epochs, 1))
        if self.first_start is None:
            self.first_start = time.perf_counter()
        if self._progress is not None:
            job.task = self._progress.add_task(label, total=1, eta="")
        self.running[key], self.current = job, key
        self.job(key).phase("loading and tokenizing data", 1)

    def finish_job(self, key: str | None = None, failed: bool = False) -> None:
        """The job ended: done (its estimated cost counts as done, whatever was counted) or failed."""
        job = self.running.pop(self.current if key is None else key, None)
        if job is not None and self._progress is not None:
            self._progress.remove_task(job.task)
        if failed:
            self.jobs_failed += 1
            if job is not None:  # what it did not do will not be done in this invocation
                self.units_total -= job.units
                self.units_done -= job.counted
        else:
            self.jobs_done += 1
            self.finished_here += 1
            if job is not None:  # its estimated cost is done: what it did not count (early stop) too
                self.units_done += job.units - job.counted
                self.units_measured += job.units - job.counted
        self._refresh()

    def requeue(self, key: str) -> None:
        """The running job ``key`` is queued again (its worker died): what it counted is undone."""
        job = self.running.pop(key)
        self.units_done -= job.counted
        if self._progress is not None:
            self._progress.remove_task(job.task)

    def job(self, key: str) -> JobProgress:
        """The ``JobProgress`` of the running job ``key``."""
        return _JobView(self, key)

    # the JobProgress protocol, for the job started last
    def phase(self, description: str, batches: int) -> None:
        self.job(self.current).phase(description, batches)

    def advance(self, rows: int, train: bool) -> None:
        self.job(self.current).advance(rows, train)

    def resume(self, epochs_done: int) -> None:
        self.job(self.current).resume(epochs_done)

    def remaining(self) -> float | None:
        """Estimated seconds left, or None before any measurement."""
        if self.first_start is None or not self.finished_here:
            return None
        elapsed = time.perf_counter() - self.first_start
        if self.units_measured <= 0 or elapsed <= 0:
            return None
        return max(self.units_total - self.units_done, 0.0) / (self.units_measured / elapsed)

    def counts(self) -> str:
        """Jobs done/total, and how many are running, queued and failed when that says more."""
        text = f"jobs {self.jobs_done}/{self.total_jobs}"
        queued = self.total_jobs - self.jobs_done - self.jobs_failed - len(self.running)
        if len(self.running) > 1:
            text += f" ({len(self.running)} running, {queued} queued)"
        if self.jobs_failed:
            text += f" · {self.jobs_failed} failed"
        return text

    def status(self) -> str:
        """One line: jobs, each running job and its phase, elapsed and remaining time."""
        remaining = self.remaining()
        parts = [self.counts()]
        parts += [f"{j.label} · {j.phase} {j.steps}/{j.phase_steps}" for j in self.running.values()]
        parts.append(f"elapsed {_duration(time.perf_counter() - self.start)}")
        parts.append(f"remaining ~{_duration(remaining)}" if remaining is not None else "remaining: estimating")
        return " · ".join(parts)

    def _refresh(self) -> None:
        if self._progress is not None:
            remaining = self.remaining()
            self._progress.update(
                self._run_task,
                description=self.counts(),
                completed=min(self.units_done, self.units_total),
                eta=f"~{_duration(remaining)} left" if remaining is not None else "",
            )
        elif time.perf_counter() - self.last_line >= self.interval:
            self.last_line = time.perf_counter()
            log.info("progress: %s", self.status())

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            _live.remove(self)


class _JobView(JobProgress):
    """One running job's reports, into the run's display."""

    def __init__(self, run: RunProgress, key: str) -> None:
        self.run, self.key = run, key

    def phase(self, description: str, batches: int) -> None:
        job = self.run.running.get(self.key)
        if job is None:
            return
        job.phase, job.steps, job.phase_steps = description, 0, batches
        if self.run._progress is not None:
            label = f"{job.label} · {description}"
            self.run._progress.update(job.task, description=label, total=batches, completed=0)

    def advance(self, rows: int, train: bool, steps: int = 1) -> None:
        job = self.run.running.get(self.key)
        units = rows * (TRAIN_UNITS if train else EVAL_UNITS)
        self.run.units_done += units
        self.run.units_measured += units
        if job is not None:
            job.steps += steps
            job.counted += units
            if self.run._progress is not None:
                self.run._progress.update(job.task, completed=job.steps)
        self.run._refresh()

    def resume(self, epochs_done: int) -> None:
        job = self.run.running.get(self.key)
        if job is not None:
            job.counted += epochs_done * job.epoch_units
            self.run.units_done += epochs_done * job.epoch_units
