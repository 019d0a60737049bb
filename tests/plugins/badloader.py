"""A fixture plugin whose loaders fail: one raises FileNotFoundError, one returns None."""

from harness import TaskSpec, hookimpl


def missing(split, ctx):
    raise FileNotFoundError(2, "No such file or directory", f"/nowhere/{split}.jsonl")


@hookimpl
def register_tasks(register):
    common = {"text_fields": ("text",), "metrics": ("mse",)}
    register(TaskSpec("badloader.missing", "regression", loader=missing, **common))
    register(TaskSpec("badloader.none", "regression", loader=lambda split, ctx: None, **common))
