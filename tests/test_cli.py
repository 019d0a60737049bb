"""The CLI on the installed first-party plugins: plugins, list, nested sub-commands."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from harness.cli import main
from tests.conftest import GLUE_DIR, subprocess_env

BOX_DRAWING = {chr(c) for c in range(0x2500, 0x2580)}

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
    hooks = ["register_commands", "register_input_readers", "register_predictors", "register_tasks"]
    assert rows["spine"]["hooks"] == hooks
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
    capsys.readouterr()
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'trian'" in err and "see harness --help" in err
    assert main([]) == 2  # no command: usage


@pytest.mark.parametrize("argv", [["plugins", "--json"], ["list", "--no-sizes", "--json"]])
def test_output_into_a_closed_pipe_ends_quietly(argv, tmp_path):
    """`harness ... | head -1`: the reader is gone before harness writes (closed here before it starts)."""
    with open(tmp_path / "stderr", "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *argv], stdout=subprocess.PIPE, stderr=stderr, env=subprocess_env()
        )
        proc.stdout.close()
        code = proc.wait(timeout=120)
    assert (tmp_path / "stderr").read_text() == ""
    assert code == 141  # 128 + SIGPIPE, as a shell reports for other tools


def test_human_output_into_a_closed_pipe_ends_quietly():
    """`harness plugins 2>&1 | head -1`: the table goes to stderr, which is the closed pipe."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "plugins"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
    )
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141


def test_tables_off_a_terminal_are_plain_aligned_lines(capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    assert main(["list", "--plugin", "toy", "--no-sizes"]) == 0
    err = capsys.readouterr().err
    assert not BOX_DRAWING & set(err)
    lines = err.splitlines()
    header = next(line for line in lines if line.startswith("task "))
    assert header.split("  ")[0] == "task" and "input group" in header
    rows = {line.split()[0]: line for line in lines if line.startswith("toy.")}
    start = header.index("input group")
    assert rows["toy.colour"][start:].split()[0] == "toy" and rows["toy.score"][start:].split()[0] == "-"
    assert set(lines[lines.index(header) + 1]) == {"-", " "}  # a dashed rule under the header

    assert main(["plugins"]) == 0
    err = capsys.readouterr().err
    assert not BOX_DRAWING & set(err) and "harness.default" in err


def test_tables_on_a_terminal_are_rich_tables(monkeypatch):
    from rich.console import Console
    from rich.table import Table

    from harness.report import console as console_module

    out = io.StringIO()
    monkeypatch.setattr(console_module, "console", Console(file=out, force_terminal=True, width=100))
    table = Table("a", "b")
    table.add_row("1", "2")
    console_module.print_table(table)
    assert BOX_DRAWING & set(out.getvalue())


def test_show_prints_the_gap_table_as_plain_lines_off_a_terminal(tmp_path, capsys):
    run_dir = tmp_path / "run[1]"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    stats = {"accuracy": {"mean": 0.8, "ci95": None, "values": [0.8]}}
    gap = {"mean": -0.05, "ci95": None, "values": [-0.05], "n": 1}
    entry = {"primary": "accuracy", "higher_is_better": True, "split": "test", "stl": stats, "mtl": stats, "gap": gap}
    results = {
        "plan": {"tasks": ["a.b", "c"], "group": ["a.b", "c"], "seeds": [0]},
        "tasks": {"a.b": entry, "c": entry},
        "jobs": {},
        "version": 2,
        "training": {},
        "groups": [],
        "rows": {},
    }
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8-sig")  # a byte-order mark too
    assert main(["show", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert not BOX_DRAWING & set(err)
    lines = err.splitlines()
    assert lines[0].startswith(f"{run_dir}: MTL - STL gap per task")
    rows = [line for line in lines if line.startswith(("a.b ", "c "))]
    assert [row.split() for row in rows] == [
        ["a.b", "accuracy", "test", "0.800", "0.800", "-0.050"],
        ["c", "accuracy", "test", "0.800", "0.800", "-0.050"],
    ]
    assert rows[0].index("-0.050") == rows[1].index("-0.050")  # aligned columns


def test_error_text_is_not_turned_into_emoji(capsys):
    """':x:' in a message stays text (rich would print an emoji for it)."""
    from harness.report.console import console

    console.print("--groupers all:x: all takes no predictor")
    assert "all:x: all" in capsys.readouterr().err
