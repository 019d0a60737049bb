"""A fixture plugin that registers a task name the toy plugin also registers."""

from harness import TaskSpec, hookimpl


@hookimpl
def register_tasks(register):
    register(TaskSpec("toy.colour", "regression", text_fields=("text",), loader=lambda s, c: None, metrics=("mse",)))
