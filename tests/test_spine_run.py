"""The spine plugin end to end with the tiny model: shared-input MTL, and no report text leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow
CANARY = "Zqxcanaryvole"  # a word no tokenizer, model or log would produce by itself


def _canary_corpus(out: Path) -> Path:
    """A small generated cervical corpus whose findings and history carry the canary word."""
    assert main(["spine", "generate", "--out", str(out), "--reports", "40", "--region", "cervical", "--seed", "3"]) == 0
    path = out / "reports.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    planted = 0
    for record in records:
        text = record["text"].replace("stenosis", f"stenosis {CANARY}").replace("HISTORY:", f"HISTORY: {CANARY}.")
        planted += text != record["text"]
        record["text"] = text
    assert planted >= 30
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _spine_run(data: Path, out: Path, tasks: str) -> list[str]:
    return [
        "run",
        "--plugin",
        "spine",
        "--data",
        str(data),
        "--profile",
        "smoke",
        "--tasks",
        tasks,
        "--output",
        str(out),
    ]


def test_spine_run_on_user_data_shares_inputs_and_leaks_no_text(tmp_path):
    data = _canary_corpus(tmp_path / "corpus")
    run_dir, hf_cache, cache = tmp_path / "run", tmp_path / "hf", tmp_path / "harness-cache"
    env = subprocess_env(HF_DATASETS_CACHE=str(hf_cache), HARNESS_CACHE=str(cache))
    tasks = "cervical.canal_stenosis,cervical.disc,cervical.left_foraminal"
    done = subprocess.run(
        [sys.executable, "-m", "harness", *_spine_run(data, run_dir, tasks), "--set", "epochs=1", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert set(results["tasks"]) == {"cervical.canal_stenosis", "cervical.disc", "cervical.left_foraminal"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # every job, MTL included, read one shared stream of snippets: one input group, no per-task data
    streams = {key.split("/")[0] for prints in manifest["data_fingerprints"].values() for key in prints}
    stl = [job for job in manifest["data_fingerprints"] if job.startswith("stl-")]
    assert streams == {"spine.cervical"} and len(stl) == 3

    written = [p for root in (run_dir, cache, hf_cache) if root.exists() for p in root.rglob("*") if p.is_file()]
    assert len(written) > 10
    leaks = [p for p in written if CANARY.lower().encode() in p.read_bytes().lower()]
    assert leaks == []
    assert CANARY.lower() not in (done.stdout + done.stderr).lower()


def test_bad_user_data_error_names_file_line_field_not_text(tmp_path, capsys):
    data = _canary_corpus(tmp_path / "corpus")
    lines = data.read_text().splitlines()
    record = json.loads(lines[4])
    level = next(iter(record["labels"]))
    record["labels"][level]["canal_stenosis"] = "sever"
    lines[4] = json.dumps(record)
    data.write_text("\n".join(lines) + "\n")
    code = main(_spine_run(data, tmp_path / "run", "cervical.disc,cervical.canal_stenosis"))
    err = capsys.readouterr().err
    assert code == 2
    assert f"{data}:5" in err and "canal_stenosis" in err and "sever" in err
    assert CANARY.lower() not in err.lower()


def test_resume_refuses_jobs_trained_on_data_that_changed_since(tmp_path, capsys):
    """Corpus 3 became the default while runs on corpus 1 may sit in run folders: a --resume that
    would mix finished jobs on the old rows with new ones on other rows is refused, not mixed."""
    data = tmp_path / "corpus"
    generate = ["spine", "generate", "--out", str(data), "--reports", "30", "--region", "cervical", "--seed", "2"]
    assert main([*generate, "--corpus", "1"]) == 0
    run = [*_spine_run(data, tmp_path / "run", "cervical.disc,cervical.canal_stenosis"), "--stages", "stl"]
    run += ["--set", "epochs=1", "--job-store", "none"]
    assert main(run) == 0
    results = sorted((tmp_path / "run" / "jobs").glob("*/result.json")) + [tmp_path / "run" / "data.json"]
    before = [p.read_bytes() for p in results]
    assert main([*run, "--resume"]) == 0  # the same data: nothing to train again
    assert main([*generate, "--corpus", "3", "--force"]) == 0  # the same labels, the new wording
    capsys.readouterr()
    assert main([*run, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume: the data of" in err and "(spine.cervical/" in err and ": fingerprint " in err
    assert "another --output" in err and "Traceback" not in err
    assert [p.read_bytes() for p in results] == before
