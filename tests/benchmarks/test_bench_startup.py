"""Benchmark: start-up of the commands that train nothing, against a bare interpreter and torch's import.

``harness --help``, ``harness plugins`` and ``harness list --no-sizes`` must not import torch
(tests/test_startup.py checks the modules); this measures what that buys: each command's wall
time as a ratio of ``python -c "import torch"`` (must stay below ``MAX_TORCH_RATIO``) and of
``python -c pass`` (for information), medians of ``ROUNDS`` interleaved rounds (the ``ratio``
fixture). The issue's goal, under 0.5 s, is an absolute time and so not asserted: the table
shows each command's median seconds. Run with ``tox -e bench``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

ROUNDS = 7
MAX_TORCH_RATIO = 0.5  # a command that imported torch would take at least torch's import time
COMMANDS = {"--help": ["--help"], "plugins": ["plugins"], "list --no-sizes": ["list", "--no-sizes"]}


def _run(args: list[str]) -> None:
    subprocess.run([sys.executable, *args], env=subprocess_env(), capture_output=True, check=True, timeout=120)


@pytest.mark.benchmark(group="startup")
@pytest.mark.parametrize("command", list(COMMANDS))
def test_commands_that_train_nothing_start_well_below_torchs_import(ratio, command):
    harness = ["-m", "harness", *COMMANDS[command]]
    references = {
        "python -c 'import torch'": (["-c", "import torch"], MAX_TORCH_RATIO),
        "python -c pass": (["-c", "pass"], None),
    }
    for reference, (args, target) in references.items():
        ratio.measure(
            f"start-up: harness {command} / {reference}",
            lambda: _run(harness),
            lambda args=args: _run(args),
            rounds=ROUNDS,
            target=target,
            direction="<=",
            labels=(f"harness {command}", reference),
            setup={"processes": "fresh", "file_cache": "warm"},
        )
