"""A fixture plugin whose ``register_tasks`` raises after registering a task (its metric hook works)."""

from harness import Metric, TaskSpec, hookimpl


@hookimpl
def register_metrics(register):
    register(Metric("raising.metric", lambda p, r: 0.0))


@hookimpl
def register_tasks(register):
    register(TaskSpec("raising.first", "regression", ("text",), loader=lambda s, c: None, metrics=("mse",)))
    raise RuntimeError("cannot reach the [data.hub] server\nsecond line of the message")
