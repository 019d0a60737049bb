"""Plugin code the core calls after loading, wrapped so that its faults read as one line.

The registries hold every task's loader and every metric, grouper and predictor function
wrapped in one of these: a ``HarnessError`` passes through unchanged, any other exception
(``SystemExit`` included, never ``KeyboardInterrupt``) becomes a ``HarnessError`` naming what
was called and the plugin that registered it, chained to the original for ``-v``. Both are
plain frozen dataclasses, so they pickle whenever the wrapped function does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import DataError, HarnessError, PluginError


def describe_error(exc: BaseException) -> str:
    """An exception as one line: ``Type: first line of its message``."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class GuardedLoader:
    """A task's loader: raises ``DataError`` naming task, split and plugin, and checks it returns a Dataset."""

    loader: Callable[[str, Any], Any]
    task: str
    plugin: str

    def __call__(self, split: str, ctx: Any) -> Any:
        where = f"task {self.task!r} split {split!r}: the loader of plugin {self.plugin!r}"
        try:
            dataset = self.loader(split, ctx)
        except HarnessError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- a plugin's fault, told in one line
            raise DataError(f"{where} raised {describe_error(exc)}") from exc
        import datasets

        if not isinstance(dataset, datasets.Dataset):
            raise DataError(f"{where} returned {type(dataset).__name__}; it must return a datasets.Dataset")
        return dataset


@dataclass(frozen=True)
class GuardedCall:
    """A metric, grouper or predictor function: raises ``PluginError`` naming it and its plugin."""

    fn: Callable[..., Any]
    what: str  # "metric 'f1_macro'"
    plugin: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except HarnessError:
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- a plugin's fault, told in one line
            raise PluginError(f"{self.what} of plugin {self.plugin!r} raised {describe_error(exc)}") from exc
