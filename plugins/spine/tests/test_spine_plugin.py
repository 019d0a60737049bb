"""The plugin through the real plugin manager, and `harness spine generate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import harness_spine
import pytest
from harness_spine import plugin
from harness_spine.schema import region_pathologies
from harness_spine.userdata import read_reports

from harness.api import LoadContext, ProblemType
from harness.core.plugins import build_registries, new_manager
from harness.errors import ConfigError, RunError


@pytest.fixture(scope="module")
def registries():
    return build_registries(new_manager(load=["spine"], autoload=False))


def test_tasks_register_through_the_plugin_manager(registries) -> None:
    names = registries.tasks.by_plugin("spine")
    expected = {f"{r}.{p.name}" for r in ("cervical", "lumbar") for p in region_pathologies(r)}
    assert set(names) == expected and len(names) == 16
    canal = registries.tasks.get("cervical.canal_stenosis")
    assert canal.problem_type is ProblemType.SINGLE_LABEL
    assert canal.labels == ("normal", "mild", "moderate", "severe")
    assert canal.metrics == ("f1_macro", "accuracy", "quadratic_kappa")
    assert canal.input_group == "spine.cervical" and canal.text_fields == ("text",)
    assert canal.splits == ("train", "dev", "test") and canal.label_column == "canal_stenosis"
    assert registries.tasks.get("lumbar.hemangioma").metrics == ("f1_macro", "accuracy")
    assert registries.tasks.get("lumbar.disc").labels == ("none", "bulge", "protrusion", "extrusion")


def test_loaders_return_the_label_column(registries) -> None:
    ctx = LoadContext(profile="smoke", options={"reports": "30"})
    lumbar = [e.value for e in registries.tasks if e.value.input_group == "spine.lumbar"]
    first = lumbar[0].loader("dev", ctx)
    for task in lumbar:
        ds = task.loader("dev", ctx)
        assert task.label_column in ds.column_names and ds["report_id"] == first["report_id"]


def test_plugin_version() -> None:
    assert harness_spine.__version__ == "0.1.0"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness")
    plugin.register_commands(subparsers=parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_generate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "corpus"
    args = _parse(["spine", "generate", "--out", str(out), "--reports", "12", "--seed", "5", "--region", "lumbar",
                   "--noise", "0.1", "--relatedness", "0.5"])  # fmt: skip
    assert args.func(args) == 0
    reports = read_reports(out / "reports.jsonl")
    assert len(reports) == 12 and {r.region for r in reports} == {"lumbar"}
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["generator"] == {
        "version": "0.1.0",
        "reports": 12,
        "region": "lumbar",
        "noise": 0.1,
        "relatedness": 0.5,
        "seed": 5,
        "corpus": 3,
    }
    assert set(truth["groups"]) == {"lumbar"}
    err = capsys.readouterr().err
    assert "wrote 12 reports (lumbar 12)" in err and "degeneration" in err
    assert not any(r.text[:40] in err for r in reports)
    with pytest.raises(RunError, match="--force"):
        args.func(args)
    args = _parse(["spine", "generate", "--out", str(out), "--reports", "3", "--force"])
    assert args.func(args) == 0 and len(read_reports(out / "reports.jsonl")) == 6
    with pytest.raises(ConfigError, match="noise"):
        bad = _parse(["spine", "generate", "--out", str(out), "--noise", "1.5"])
        bad.func(bad)


def test_spine_without_sub_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse(["spine"])
    assert args.func(args) == 2
    assert "generate" in capsys.readouterr().err


def test_generate_through_the_harness_cli(tmp_path: Path) -> None:
    cli = pytest.importorskip("harness.cli")
    assert cli.main(["spine", "generate", "--out", str(tmp_path), "--reports", "4", "--seed", "1"]) == 0
    assert len(read_reports(tmp_path / "reports.jsonl")) == 8
    assert cli.main(["spine", "generate", "--out", str(tmp_path), "--reports", "4"]) != 0  # exists, no --force


def test_planted_predictor_is_the_generators_relatedness():
    """High within the degeneration group, ~0 for the independent hemangioma, negative for the
    anti-related annular fissure, undefined across regions (no shared latent)."""
    import numpy as np
    from harness_spine.planted import planted

    names = [
        "cervical.disc",
        "cervical.canal_stenosis",
        "cervical.hemangioma",
        "cervical.annular_fissure",
        "lumbar.disc",
    ]
    m = planted(names, {})["matrix"]
    assert m[0, 1] == m[1, 0] > 0.4  # disc and canal stenosis share degeneration
    assert abs(m[0, 2]) < 0.05  # hemangioma: no parent
    assert m[0, 3] < -0.1  # annular fissure: anti-related
    assert np.isnan(m[0, 4]) and np.isnan(m[4, 1]) and m[4, 4] == 1.0
