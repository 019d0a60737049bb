"""The core's own metrics, groupers and predictors, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.api import Grouper, Metric, Predictor, Register, TaskSpec
from harness.core.metrics import METRICS, metric_fn
from harness.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Register) -> None:
    for name, (higher, problem_types, description) in METRICS.items():
        register(Metric(name, metric_fn(name), higher, description, problem_types=problem_types))


def _all_in_one(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    return [[t.name for t in tasks]]


def _singletons(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    return [[t.name] for t in tasks]


def _by_input_group(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    from harness.data.streams import make_streams  # the training path's own grouping by input_group

    return [list(stream.task_names) for stream in make_streams(tasks)]


@hookimpl
def register_groupers(register: Register) -> None:
    register(Grouper("all", _all_in_one, "every selected task in one group"))
    register(Grouper("singletons", _singletons, "each task alone (no sharing)"))
    register(Grouper("input_group", _by_input_group, "tasks that label the same inputs share a model"))


def _random(tasks: Sequence[TaskSpec], artifacts: Mapping[str, Any]) -> Any:
    import numpy as np

    rng = np.random.default_rng(int(artifacts.get("seed", 0)))
    m = rng.uniform(-1, 1, size=(len(tasks), len(tasks)))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return m


def _size_ratio(tasks: Sequence[TaskSpec], artifacts: Mapping[str, Any]) -> Any:
    import numpy as np

    sizes = np.array([float(artifacts["train_sizes"][t.name]) for t in tasks])
    return np.minimum.outer(sizes, sizes) / np.maximum.outer(sizes, sizes)


@hookimpl
def register_predictors(register: Register) -> None:
    register(Predictor("random", _random, "baseline: a seeded random symmetric matrix"))
    register(Predictor("size_ratio", _size_ratio, "baseline: min/max ratio of training-set sizes"))
