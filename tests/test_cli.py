"""The CLI on the installed first-party plugins: plugins, list, nested sub-commands."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from tests.conftest import GLUE_DIR

GLUE_FIVE = {
    "cola": "single_label_classification",
    "sst2": "single_label_classification",
    "stsb": "regression",
    "rte": "single_label_classification",
    "wnli": "single_label_classification",
}


def _json(capsys, argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_plugins_json_lists_first_party_plugins_with_versions_and_hooks(capsys):
    rows = {r["name"]: r for r in _json(capsys, ["plugins", "--json"])}
    assert rows["glue"]["version"] == "0.1.0" and rows["glue"]["hooks"] == ["register_tasks"]
    assert rows["spine"]["hooks"] == ["register_commands", "register_tasks"]
    assert rows["harness.default"]["status"] == "loaded"


@pytest.mark.skipif(not GLUE_DIR.is_dir(), reason="GLUE data not found")
def test_list_glue_shows_the_five_tasks_with_split_sizes(capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_GLUE_DIR", str(GLUE_DIR))
    listing = _json(capsys, ["list", "--plugin", "glue", "--json"])
    tasks = {t["name"]: t for t in listing["tasks"]}
    assert {t["plugin"] for t in tasks.values()} == {"glue"}
    for name, problem in GLUE_FIVE.items():
        assert tasks[name]["problem_type"] == problem
        assert all(isinstance(n, int) and n > 0 for n in tasks[name]["splits"].values())
    assert tasks["stsb"]["splits"]["train"] == 5749
    assert "error" in tasks["qqp"]["splits"]["train"]  # absent files are reported, not fatal
    assert {m["name"] for m in listing["metrics"]} >= {"accuracy", "pearson", "matthews_correlation"}


def test_list_spine_shows_both_regions_with_label_sets(capsys):
    listing = _json(capsys, ["list", "--plugin", "spine", "--json", "--no-sizes"])
    tasks = {t["name"]: t for t in listing["tasks"]}
    assert tasks["cervical.canal_stenosis"]["labels"] == ["normal", "mild", "moderate", "severe"]
    assert tasks["lumbar.disc"]["labels"] == ["none", "bulge", "protrusion", "extrusion"]
    assert "cervical.cord_signal" in tasks and "lumbar.subarticular_stenosis" in tasks
    assert {t["input_group"] for t in tasks.values()} == {"spine.cervical", "spine.lumbar"}


def test_common_options_reach_nested_sub_commands(tmp_path):
    assert main(["spine", "generate", "--out", str(tmp_path), "--reports", "2", "-v"]) == 0


def test_unknown_sub_command_and_option_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as err:
        main(["trian"])
    assert err.value.code == 2
    assert main([]) == 2  # no command: usage
