"""A fixture plugin: a task that fails on demand inside a job, for the executors' failure tests.

``faulty.colour`` is ``toy.colour`` (the same rows) under another name, with a second metric,
``fault``, computed at every evaluation of every job that trains the task (never by the data
check before training). With ``HARNESS_FAULT_DIR`` set, a file there decides what it does:

- ``raise``: raise ``RuntimeError("planted failure")`` (the job fails, every time);
- ``kill``: remove the file, then kill this process with SIGKILL, unless it is the process
  whose pid is in ``main.pid`` (the worker dies once; a retry succeeds).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import toy

from harness import Metric, TaskSpec, hookimpl


def fault(predictions, references) -> float:
    folder = os.environ.get("HARNESS_FAULT_DIR")
    if folder:
        folder_path = Path(folder)
        if (folder_path / "raise").exists():
            raise RuntimeError("planted failure")
        kill = folder_path / "kill"
        main = folder_path / "main.pid"
        if kill.exists() and (not main.exists() or int(main.read_text()) != os.getpid()):
            kill.unlink()
            os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


@hookimpl
def register_metrics(register):
    register(Metric("fault", fault, higher_is_better=True, description="fails on demand (tests)"))


@hookimpl
def register_tasks(register):
    register(
        TaskSpec(
            "faulty.colour",
            "single_label_classification",
            labels=tuple(toy.COLOURS),
            metrics=("accuracy", "fault"),
            label_column="colour",
            text_fields=("text",),
            loader=toy.load,
            splits=("train", "dev", "test"),
        )
    )
