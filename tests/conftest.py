"""Shared fixtures: offline, a private cache, and the toy fixture plugin on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_PLUGINS = Path(__file__).resolve().parent / "plugins"
GLUE_DIR = ROOT.parent / "shared" / "data" / "glue"
sys.path.insert(0, str(FIXTURE_PLUGINS))


@pytest.fixture(scope="session", autouse=True)
def harness_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenized splits go to a per-session cache, shared by the subprocess runs of the session."""
    cache = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE"] = str(cache)
    # No job store unless a test asks for one (--job-store DIR): the tests of training must train,
    # not reuse the jobs an earlier test of the session finished with the same settings.
    os.environ["HARNESS_JOB_STORE"] = "none"
    return cache


@pytest.fixture
def toy_manager():
    import toy

    from harness.core.plugins import new_manager

    return new_manager(autoload=False, extra=[("toy", toy)])


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for `harness` subprocesses: offline, fixture plugins importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FIXTURE_PLUGINS), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env
