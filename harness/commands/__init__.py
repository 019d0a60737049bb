"""The core's own sub-commands, added through ``register_commands`` like any plugin's."""

from __future__ import annotations

import argparse

from harness.commands import cache, inspect, leaderboard, predict, run
from harness.hookspecs import hookimpl


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    inspect.add_commands(subparsers)
    run.add_command(subparsers)
    leaderboard.add_command(subparsers)
    cache.add_command(subparsers)
    predict.add_command(subparsers)
