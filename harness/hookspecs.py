"""Hook specifications of the ``harness`` plugin system.

Every ``register_*`` hook receives a ``register`` callback and calls it once per object it
contributes, as in llm and datasette. The core records which plugin made each call.
Every hook here must be documented in the README (a test checks that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

PROJECT = "harness"
#: The callback a ``register_*`` hook receives: call it with each object the plugin contributes.
Register = Callable[[Any], None]
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tasks(register: Register) -> None:
    """Call ``register(TaskSpec(...))`` for each task the plugin provides."""


@hookspec
def register_metrics(register: Register) -> None:
    """Call ``register(Metric(name, fn, higher_is_better))``; ``fn(predictions, references) -> float``."""


@hookspec
def register_groupers(register: Register) -> None:
    """Call ``register(Grouper(name, fn))``; ``fn(tasks, context)`` returns a partition of task names."""


@hookspec
def register_predictors(register: Register) -> None:
    """Call ``register(Predictor(name, fn))``; ``fn(tasks, artifacts)`` returns a task x task matrix."""


@hookspec
def register_input_readers(register: Register) -> None:
    """Call ``register(InputReader(name, fn))``; ``fn(record, text_fields)``: what ``harness predict`` classifies."""


@hookspec
def register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add sub-commands to the ``harness`` CLI. Set ``func=callable(args) -> int`` as a default."""


@hookspec
def run_started(run_dir: str, config: dict[str, Any], tasks: list[str]) -> None:
    """Observer: a ``harness run`` has resolved its plan and is about to train (main process only)."""


@hookspec
def run_finished(run_dir: str, results: dict[str, Any]) -> None:
    """Observer: a ``harness run`` has written its results (main process only)."""
