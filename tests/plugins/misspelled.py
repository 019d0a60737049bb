"""A fixture plugin that implements a hook that does not exist (register_task, not register_tasks)."""

from harness import hookimpl


@hookimpl
def register_task(register):
    pass
