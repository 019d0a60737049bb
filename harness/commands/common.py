"""What several sub-commands share: the loader context from flags, and the plugins whose tasks are selected."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.api import LoadContext
from harness.errors import ConfigError


def load_context(data: Path | None, options: list[str], seed: int, profile: str) -> LoadContext:
    parsed = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--data-option {item!r}: expected key=value")
        parsed[key.strip()] = value.strip()
    if data is not None and not data.exists():
        raise ConfigError(f"--data {data}: no such file or folder")
    return LoadContext(data_dir=data, seed=seed, profile=profile, options=parsed)


def task_owners(args: argparse.Namespace) -> set[str]:
    """The plugins whose tasks a command selects: ``--plugin`` names and the ``--tasks-dir`` cards."""
    from harness.data.taskdir import plugin_name

    return set(args.plugin) | ({plugin_name(args.tasks_dir)} if args.tasks_dir else set())
