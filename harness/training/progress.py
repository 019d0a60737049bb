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


class RunProgress(JobProgress):
    """Progress of a whole run: jobs done/total, the current job and phase, elapsed and remaining time.

    On a terminal, one live rich display; off a terminal, a plain log line every ``interval``
    seconds. The remaining time is the remaining cost (examples per job and epoch, from the
    data check before training; a training row counts as three evaluation rows) at the rate
    measured so far in this invocation (reused jobs count as done, not in the rate).
    """

    def __init__(self, total_jobs: int, live: bool | None = None, interval: float = 30.0) -> None:
        self.total_jobs, self.interval = total_jobs, interval
        self.live = sys.stderr.isatty() if live is None else live
        self.jobs_done, self.units_done, self.units_total, self.units_measured = 0, 0.0, 0.0, 0.0
        self.job_label, self.phase_label, self.steps, self.phase_steps = "", "", 0, 0
        self.epoch_units, self.job_units = 0.0, 0.0
        self.start = self.last_line = time.perf_counter()
        self._progress: Any = None

    def plan(self, job_units: list[float]) -> None:
        """The estimated cost of every job of the run, in order."""
        self.units_total = float(sum(job_units))
        if self.live:
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
            self._phase_task = self._progress.add_task("", total=1, eta="")
            self._progress.start()
            _live.append(self)

    def skip_job(self, units: float) -> None:
        """A job finished before (reused): its cost counts as done."""
        self.jobs_done += 1
        self.units_done += units
        self._refresh()

    def start_job(self, label: str, units: float, epochs: int) -> None:
        self.job_label, self.job_units, self.epoch_units = label, units, units / max(epochs, 1)
        self._job_start_units = self.units_done
        self.phase("loading and tokenizing data", 1)

    def finish_job(self) -> None:
        self.jobs_done += 1
        self.units_done = self._job_start_units + self.job_units  # the estimate, not the rows counted
        self._refresh()

    def resume(self, epochs_done: int) -> None:
        self.units_done += epochs_done * self.epoch_units

    def phase(self, description: str, batches: int) -> None:
        self.phase_label, self.steps, self.phase_steps = description, 0, batches
        if self._progress is not None:
            label = f"{self.job_label} · {description}"
            self._progress.update(self._phase_task, description=label, total=batches, completed=0)

    def advance(self, rows: int, train: bool) -> None:
        units = rows * (TRAIN_UNITS if train else EVAL_UNITS)
        self.steps += 1
        self.units_done += units
        self.units_measured += units
        if self._progress is not None:
            self._progress.update(self._phase_task, completed=self.steps)
        self._refresh()

    def remaining(self) -> float | None:
        """Estimated seconds left, or None before any measurement."""
        elapsed = time.perf_counter() - self.start
        if self.units_measured <= 0 or elapsed <= 0:
            return None
        return max(self.units_total - self.units_done, 0.0) / (self.units_measured / elapsed)

    def status(self) -> str:
        """One line: jobs, current job and phase, elapsed and remaining time."""
        remaining = self.remaining()
        parts = [f"jobs {self.jobs_done}/{self.total_jobs}"]
        if self.job_label:
            parts.append(f"{self.job_label} · {self.phase_label} {self.steps}/{self.phase_steps}")
        parts.append(f"elapsed {_duration(time.perf_counter() - self.start)}")
        parts.append(f"remaining ~{_duration(remaining)}" if remaining is not None else "remaining: estimating")
        return " · ".join(parts)

    def _refresh(self) -> None:
        if self._progress is not None:
            remaining = self.remaining()
            self._progress.update(
                self._run_task,
                description=f"jobs {self.jobs_done}/{self.total_jobs}",
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
