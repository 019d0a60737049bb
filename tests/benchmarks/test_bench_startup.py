"""Benchmark: start-up of the commands that train nothing, against a bare interpreter and torch's import.

``harness --help``, ``harness plugins`` and ``harness list --no-sizes`` must not import torch
(tests/test_startup.py checks the modules); this measures what that buys: each command's wall
time as a ratio of ``python -c pass`` (reported) and of ``python -c "import torch"`` (asserted
below ``MAX_TORCH_RATIO``), medians of ``ROUNDS`` interleaved rounds in one session. Run with
``tox -e bench``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from tests.conftest import subprocess_env

ROUNDS = 7
MAX_TORCH_RATIO = 0.5  # a command that imported torch would take at least torch's import time
COMMANDS = {"--help": ["--help"], "plugins": ["plugins"], "list --no-sizes": ["list", "--no-sizes"]}
REFERENCES = {"python -c pass": ["-c", "pass"], "import torch": ["-c", "import torch"]}


def _seconds(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=subprocess_env(), capture_output=True, check=True, timeout=120)
    return time.perf_counter() - start


@pytest.mark.benchmark(group="startup")
def test_commands_that_train_nothing_start_well_below_torchs_import(benchmark):
    runs = {**{k: ["-m", "harness", *v] for k, v in COMMANDS.items()}, **REFERENCES}
    times: dict[str, list[float]] = {name: [] for name in runs}

    def one_round() -> None:  # every command once, in the same order: interleaved
        for name, args in runs.items():
            times[name].append(_seconds(args))

    for args in runs.values():
        _seconds(args)  # warm the file cache
    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    median = {name: statistics.median(values) for name, values in times.items()}
    for name in COMMANDS:
        bare, torch = median[name] / median["python -c pass"], median[name] / median["import torch"]
        benchmark.extra_info[name] = {"seconds": median[name], "ratio_to_bare_python": bare, "ratio_to_torch": torch}
        print(f"\nharness {name}: {median[name]:.2f}s = {bare:.1f}x python -c pass, {torch:.2f}x import torch")
    benchmark.extra_info["references"] = {k: median[k] for k in REFERENCES}
    assert all(median[name] / median["import torch"] < MAX_TORCH_RATIO for name in COMMANDS), median
