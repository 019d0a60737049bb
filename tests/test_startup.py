"""Commands that train nothing start without the deep-learning stack: no torch, transformers,
accelerate or datasets import on their path (checked in a fresh interpreter, by module, not by time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env

HEAVY = ("torch", "transformers", "accelerate", "datasets")

# Runs the CLI as `python -m harness ARGS` does, then writes which heavy modules got imported.
PROBE = """
import json, runpy, sys
argv, out = sys.argv[1:-1], sys.argv[-1]
sys.argv = ["harness", *argv]
try:
    runpy.run_module("harness", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "imported": sorted(m for m in {heavy} if m in sys.modules)}, f)
""".replace("{heavy}", repr(set(HEAVY)))


def imported_modules(argv: list[str], out) -> dict:
    """The exit code of ``harness ARGV`` in a fresh interpreter and the heavy modules it imported."""
    subprocess.run(
        [sys.executable, "-c", PROBE, *argv, str(out)], env=subprocess_env(), capture_output=True, timeout=120
    )
    return json.loads(out.read_text())


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["list", "--no-sizes"]])
def test_commands_that_train_nothing_import_no_deep_learning_stack(argv, tmp_path):
    seen = imported_modules(argv, tmp_path / "seen.json")
    assert seen["code"] in (0, None), seen
    assert seen["imported"] == [], f"harness {' '.join(argv)} imported {seen['imported']}"


def test_the_probe_sees_an_import_of_torch(tmp_path):
    """The check can fail: `harness list` with split sizes loads the tasks' data through datasets."""
    seen = imported_modules(["list", "--plugin", "spine"], tmp_path / "seen.json")
    assert "datasets" in seen["imported"], seen
