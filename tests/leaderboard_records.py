"""Records for the leaderboard render tests: one real record (a tiny spine run: 3 tasks, 3 seeds, pairs), variants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.leaderboard.records import RunRecord

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "leaderboard" / "spine-tiny.json"


def raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


def record(data: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord.model_validate(raw() if data is None else data)


def variant(run_id: str, created: str, **fingerprints: str) -> dict[str, Any]:
    """The fixture as another run (id, time, results hash), with some tasks' data fingerprints replaced."""
    data = raw()
    data["provenance"].update(run_id=run_id, finished=created, recorded=created, run_sha256=run_id)
    for task in data["tasks"]:
        task["data_fingerprint"] = fingerprints.get(task["name"], task["data_fingerprint"])
    return data


def rename_task(data: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Every mention of task ``old`` (tasks, results, predictors, pair gaps, groupers) renamed to ``new``."""
    text = json.dumps(data).replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
    renamed: dict[str, Any] = json.loads(text)
    return renamed
