"""`harness show` and the report: heatmaps, group, score and grouper tables, from a synthetic RunResults.

The fixture is built in code with known values (a CKA matrix with per-layer stacks, a TAG
matrix with an undefined entry, pair gaps with an unmeasured pair and a significant negative
one, scores with a known rho), so each test can look for the cells it expects.
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from rich.console import Console

from harness.cli import main
from harness.protocol.gaps import gap_by_size
from harness.protocol.results import GapEstimate, GrouperResult, PredictorMatrix, PredictorScore, RunResults
from harness.report.format import UNDEFINED, legend, percent, short_names
from harness.report.heatmap import Scale, heatmap, signed_scale, similarity_scale
from harness.report.tables import SECTIONS, print_science, report_items
from harness.scoring.score import DetectionScore, Score

BOX_DRAWING = {chr(c) for c in range(0x2500, 0x2580)}
TASKS = ["cervical.disc", "cervical.canal_stenosis", "cervical.hemangioma", "cervical.cord_signal"]
SEEDS = [0, 1, 2]
NAN = math.nan

CKA = np.array(
    [
        [1.0, 0.91, 0.42, 0.55],
        [0.91, 1.0, 0.37, 0.60],
        [0.42, 0.37, 1.0, 0.48],
        [0.55, 0.60, 0.48, 1.0],
    ]
)
TAG = np.array(
    [
        [NAN, 0.012, -0.030, 0.004],
        [0.020, NAN, NAN, -0.008],
        [-0.025, -0.040, NAN, 0.001],
        [0.003, 0.006, 0.002, NAN],
    ]
)
# pair gaps [S, T, T]: canal_stenosis with hemangioma is negative on every seed; disc with cord_signal unmeasured
PAIR_GAPS = np.full((3, 4, 4), NAN)
for s, shift in enumerate((0.0, 0.002, -0.002)):
    PAIR_GAPS[s] = np.array(
        [
            [NAN, 0.010, -0.004, NAN],
            [0.012, NAN, -0.050, 0.003],
            [-0.006, -0.020, NAN, 0.001],
            [NAN, 0.002, 0.000, NAN],
        ]
    ) + shift * np.array([[0, 1, 1, 0], [1, 0, 0.1, 1], [1, 1, 0, 1], [0, 1, 1, 0]])


def _gap(task: str, group: list[str], values: list[float]) -> dict:
    mean = float(np.mean(values))
    return GapEstimate(task, group, "f1_macro", mean, [mean - 0.01, mean + 0.01], values, SEEDS).to_json()


def _group(tasks: list[str], sources: list[str], means: dict[str, float]) -> dict:
    gaps = {t: _gap(t, tasks, [means[t]] * 3) for t in tasks}
    return {"tasks": tasks, "sources": sources, "gaps": gaps, "seconds": 12.5}


def _task_entry(gap: float) -> dict:
    stats = {"f1_macro": {"mean": 0.5, "ci95": [0.4, 0.6], "values": [0.5] * 3}}
    mtl = {"f1_macro": {"mean": 0.5 + gap, "ci95": None, "values": [0.5 + gap] * 3}}
    gap_entry = {"mean": gap, "ci95": [gap - 0.01, gap + 0.01], "values": [gap] * 3, "n": 3}
    return {
        "primary": "f1_macro",
        "higher_is_better": True,
        "split": "test",
        "stl": stats,
        "mtl": mtl,
        "gap": gap_entry,
    }


def _score(value: float, low: float | None, high: float | None, p: float | None, n: int = 10) -> dict:
    return Score(value, low, high, p, n, "Spearman rho").to_dict()


def _detection() -> dict:
    return DetectionScore(0.5, 1.0, 2 / 3, 1, 1, 0, 8, 0.5, 0.05, 10, ((1, 2),), ((1, 2), (2, 1))).to_dict()


def synthetic_results() -> RunResults:
    per_layer = np.stack([np.clip(CKA + 0.05, 0, 1), CKA - 0.05])  # [2, T, T]
    cka_details = {
        "per_layer": per_layer.tolist(),
        "layers": ["embeddings", "layer 1"],
        "ceiling": {TASKS[0]: 0.97, TASKS[1]: 0.95, TASKS[2]: None, TASKS[3]: 0.9},
        "floor": 0.3,
        "vs_untrained": {t: 0.8 for t in TASKS},
    }
    predictors = {
        "cka_linear": PredictorMatrix("cka_linear", TASKS, CKA, True, 3.0, ["features"], "linear CKA", cka_details),
        "cka_linear_min": PredictorMatrix(
            "cka_linear_min", TASKS, CKA - 0.05, True, 3.0, ["features"], "linear CKA, min", cka_details
        ),
        "tag": PredictorMatrix("tag", TASKS, TAG, False, 1.0, ["training"], "TAG lookahead affinity"),
        "grad_cosine_train": PredictorMatrix(
            "grad_cosine_train",
            TASKS,
            np.array([[1, 0.2, -0.1, 0.05], [0.2, 1, -0.3, 0.1], [-0.1, -0.3, 1, 0], [0.05, 0.1, 0, 1.0]]),
            True,
            2.0,
            ["training"],
            "gradient cosine",
            {"mean_shared_inputs": 0.12, "mean_disjoint_inputs": None},
        ),
        "grad_cosine_init": PredictorMatrix(
            "grad_cosine_init", TASKS, None, True, 0.0, ["init_gradients"], error="needs init_gradients: the init stage"
        ),
    }
    scores = {
        "cka_linear": PredictorScore(
            "cka_linear",
            pairs=_score(0.62, 0.10, 0.90, 0.012),
            groups=_score(0.40, -0.20, 0.70, 0.08, n=14),
            fraction_of_ceiling=0.8,
            negative_transfer=_detection(),
            cost_share=0.05,
            notes=["groups: few points"],
        ),
        "tag": PredictorScore(
            "tag", pairs=_score(-0.15, None, None, 0.7), cost_share=0.01, notes=["groups: few points"]
        ),
        "grad_cosine_init": PredictorScore("grad_cosine_init", notes=["needs init_gradients: the init stage"]),
    }
    groups = [
        _group(TASKS, ["all-task run"], {TASKS[0]: 0.004, TASKS[1]: -0.002, TASKS[2]: -0.031, TASKS[3]: 0.0}),
        _group(TASKS[1:3], ["pairs", "affinity:cka_linear"], {TASKS[1]: -0.05, TASKS[2]: -0.02}),
        _group(TASKS[:2], ["pairs", "cluster:cka_linear"], {TASKS[0]: 0.01, TASKS[1]: 0.012}),
    ]
    groupers = {
        "pair_gaps": GrouperResult("pair_gaps", [TASKS[:2], [TASKS[2]], [TASKS[3]]], 0.006, 0.0, 1, 300.0),
        "affinity:tag": GrouperResult("affinity:tag", [TASKS[1:3], [TASKS[0]], [TASKS[3]]], -0.018, 0.023, 3, 1.0),
    }
    return RunResults(
        plan={"tasks": TASKS, "group": TASKS, "seeds": SEEDS, "stages": ["stl", "all", "pairs", "groups"]},
        training={"loss_weighting": "equal", "epochs": 1, "patience": 0},
        tasks={t: _task_entry(g) for t, g in zip(TASKS, (0.004, -0.002, -0.031, 0.0), strict=True)},
        groups=groups,
        jobs={},
        rows={"spine.cervical": {"train": 200, "dev": 80, "test": 80}},
        pair_gaps={"tasks": TASKS, "seeds": SEEDS, "values": PAIR_GAPS},
        predictors={name: p.to_json() for name, p in predictors.items()},
        scores={
            "noise_ceiling": Score(0.45, None, None, None, 10, "split-half", corrected=0.64).to_dict(),
            "notes": [],
            "predictors": {name: s.to_json() for name, s in scores.items()},
        },
        groupers={name: g.to_json() for name, g in groupers.items()},
        gap_by_size=gap_by_size(groups),
    )


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "results.json").write_text(json.dumps(synthetic_results().to_json(), indent=1))
    return run


def _show(capsys, *argv: str) -> list[str]:
    assert main(["show", *argv]) == 0
    err = capsys.readouterr().err
    assert not BOX_DRAWING & set(err)  # off a terminal: plain lines
    return err.splitlines()


def _row(lines: list[str], start: str, after: str | None = None) -> list[str]:
    """The cells (split on whitespace) of the first line starting with ``start`` (after a line containing ``after``)."""
    if after is not None:
        lines = lines[next(k for k, line in enumerate(lines) if after in line) :]
    return next(line.split() for line in lines if line.split()[:1] == [start])


LABELS = {"disc": TASKS[0], "c_stenosis": TASKS[1], "hemangioma": TASKS[2], "c_signal": TASKS[3]}


def test_short_names_drop_the_common_prefix_and_stay_distinct():
    assert short_names(TASKS) == {full: short for short, full in LABELS.items()}
    two_regions = short_names(
        ["cervical.disc", "lumbar.disc", "lumbar.canal_stenosis_left", "lumbar.canal_stenosis_right"]
    )
    assert two_regions["cervical.disc"] == "c.disc" and two_regions["lumbar.disc"] == "l.disc"
    assert len(set(two_regions.values())) == 4 and all(len(v) <= 10 for v in two_regions.values())
    clash = short_names(["abcdefghijkl", "abcdefghijkm"])
    assert len(set(clash.values())) == 2
    assert legend({"a": "a"}) is None and legend({"x.a": "a"}) == "a = x.a"


def test_scales_centre_cka_at_its_floor_and_signed_values_at_zero():
    cka = similarity_scale([0.2, 0.9], floor=0.3)
    assert (cka.low, cka.centre, cka.high) == (0.0, 0.3, 1.0)
    assert cka.intensity(0.3) == 0.0 and cka.intensity(1.0) == 1.0 and cka.intensity(0.0) == -1.0
    assert similarity_scale([0.2, 0.9]).centre == 0.5
    signed = similarity_scale([-0.03, 0.01])
    assert (signed.low, signed.centre, signed.high) == (-0.03, 0.0, 0.03)
    assert signed_scale([]).high == 1.0  # nothing to scale by: no division by zero
    assert percent(0.00012760558) == "0.013%" and percent(0.5) == "50%" and percent(None) == "-"


def test_heatmap_row_shows_values_nan_as_a_dot_and_marks(capsys):
    from harness.report.console import print_table

    labels = short_names(TASKS)
    print_table(heatmap(TAG, TASKS, labels, signed_scale([0.04]), digits=3, marked={(2, 1)}))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].split() == ["i", "\\", "j", "disc", "c_stenosis", "hemangioma", "c_signal"]
    assert _row(lines, "c_stenosis") == ["c_stenosis", "+0.020", UNDEFINED, UNDEFINED, "-0.008"]
    assert _row(lines, "hemangioma") == ["hemangioma", "-0.025", "-0.040*", UNDEFINED, "+0.001"]


def test_heatmap_cells_are_coloured_on_a_terminal(monkeypatch):
    import harness.report.console as console_module

    out = io.StringIO()
    monkeypatch.setattr(
        console_module, "console", Console(file=out, force_terminal=True, color_system="truecolor", width=120)
    )
    scale = Scale(0.0, 0.3, 1.0)
    console_module.print_table(heatmap(CKA, TASKS, short_names(TASKS), scale))
    text = out.getvalue()
    assert "48;2;" in text  # background colours
    assert scale.style(1.0).bgcolor.triplet == (33, 102, 172) and scale.style(0.0).bgcolor.triplet == (178, 24, 43)
    assert scale.style(0.3).bgcolor.triplet == (247, 247, 247)  # white at the centre
    assert "48;2;33;102;172" not in text  # no cell reaches 1.0 off the diagonal; the diagonal is uncoloured


def test_show_prints_groups_and_gap_by_size(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "gaps")
    assert lines[0].startswith(f"{run_dir}: MTL - STL gap per task")
    pair = next(k for k, line in enumerate(lines) if line.startswith("cervical.canal_stenosis + cervical.hemangioma "))
    assert lines[pair].split()[3:] == ["2", "pairs,", "affinity:cka_linear", "cervical.canal_stenosis", "-0.050",
                                       "[-0.060,", "-0.040]", "below", "3", "12"]  # fmt: skip
    assert lines[pair + 1].split() == ["cervical.hemangioma", "-0.020", "[-0.030,", "-0.010]", "below", "3"]
    assert any(line.startswith("all 4 tasks ") and "all-task run" in line for line in lines)
    assert _row(lines, "2", after="gap by group size") == ["2", "2", "4", "-0.012", "-0.050"]
    assert _row(lines, "4", after="gap by group size") == ["4", "1", "4", "-0.007", "-0.031"]
    assert not any("predictor scores" in line or "pair gaps" in line for line in lines)


def test_show_prints_pair_gaps_and_predictor_heatmaps(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "predictors")
    assert lines[0] == "tasks: " + ", ".join(f"{short} = {full}" for short, full in LABELS.items())
    # seed means; the significantly negative pair is starred, the unmeasured one a dot
    assert _row(lines, "disc", after="pair gaps") == ["disc", UNDEFINED, "+0.010", "-0.004", UNDEFINED]
    assert _row(lines, "c_stenosis", after="pair gaps")[1:4] == ["+0.012", UNDEFINED, "-0.050*"]
    assert _row(lines, "c_stenosis", after="cka_linear: linear CKA [symmetric") == [
        "c_stenosis", "0.91", "1.00", "0.37", "0.60"
    ]  # fmt: skip
    assert any("cka_linear: linear CKA [symmetric; colour red 0.00 .. blue 1.00, white at the floor 0.30" in line
               for line in lines)  # fmt: skip
    assert any("tag: TAG lookahead affinity [asymmetric" in line for line in lines)
    assert _row(lines, "c_stenosis", after="tag: TAG")[2:4] == [UNDEFINED, UNDEFINED]
    ceiling = next(line for line in lines if line.startswith("  cka_linear: ceiling"))
    assert (
        "disc 0.97" in ceiling
        and "hemangioma -" in ceiling
        and "floor (probe rows of one model shuffled) 0.30" in ceiling
    )
    assert "vs the untrained encoder disc 0.80" in ceiling
    assert "  grad_cosine_train: mean over pairs on shared inputs +0.12, on disjoint inputs -" in lines
    assert lines.count("  grad_cosine_init: needs init_gradients: the init stage") == 1  # listed, no heatmap
    assert not any(line.startswith("grad_cosine_init:") for line in lines)
    assert "per-layer matrices: add --layers" in lines and not any("embeddings" in line for line in lines)


def test_layers_prints_each_distinct_per_layer_stack_once(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "predictors", "--layers")
    assert _row(lines, "c_stenosis", after="cka_linear, embeddings") == ["c_stenosis", "0.96", "1.00", "0.42", "0.65"]
    assert _row(lines, "c_stenosis", after="cka_linear, layer 1") == ["c_stenosis", "0.86", "0.95", "0.32", "0.55"]
    assert "  cka_linear_min: per-layer matrices as for cka_linear" in lines
    assert not any("cka_linear_min, embeddings" in line for line in lines)


def test_show_prints_the_score_table_with_the_noise_ceiling(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "scores")
    row = next(line for line in lines if line.startswith("cka_linear "))
    assert "+0.62 [+0.10, +0.90] p=0.012" in row and "+0.40 [-0.20, +0.70] p=0.080" in row
    assert row.split()[-5:] == ["0.50", "1.00", "0.67", "5.0%", "[1]"]
    assert _row(lines, "tag") == ["tag", "-0.15", "p=0.700", "-", "-", "-", "1.0%", "[1]"]
    names = [line.split()[0] for line in lines if line.startswith(("cka_linear ", "tag "))]
    assert names == ["cka_linear", "tag"]  # best rho first
    assert "[1] groups: few points" in lines
    ceiling = next(line for line in lines if line.startswith("noise ceiling:"))
    assert "+0.45 (10 pairs)" in ceiling and "reliability +0.64" in ceiling and "rho / 0.80" in ceiling
    assert any(line.startswith("negative transfer: 1 of 10 measured ordered pairs") for line in lines)
    # without the predictors section, the unavailable predictor is listed (once) under the scores
    assert sum("grad_cosine_init" in line for line in lines) == 1
    assert "  grad_cosine_init: needs init_gradients: the init stage" in lines


def test_show_prints_each_groupers_groups_regret_rank_and_cost(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "groupers")
    row = next(line for line in lines if line.startswith("affinity:tag "))
    assert "cervical.canal_stenosis + cervical.hemangioma | cervical.disc | cervical.cord_signal" in row
    assert row.split()[-4:] == ["-0.018", "0.023", "3", "1"]
    assert next(line for line in lines if line.startswith("pair_gaps ")).split()[-4:] == ["+0.006", "0.000", "1", "300"]


def test_only_prints_the_sections_asked_for_in_report_order(run_dir, capsys):
    lines = _show(capsys, str(run_dir), "--only", "groupers", "--only", "gaps")
    text = "\n".join(lines)
    assert text.index("MTL - STL gap per task") < text.index("groupers:")
    assert "predictor scores" not in text and "pair gaps" not in text
    for section in SECTIONS:  # every section the report has is accepted by --only
        assert _show(capsys, str(run_dir), "--only", section)
    full = _show(capsys, str(run_dir))
    assert sum("grad_cosine_init" in line for line in full) == 1  # listed once in the whole report


def test_json_emits_the_results_file_unchanged(run_dir, capsys):
    assert main(["show", str(run_dir), "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads((run_dir / "results.json").read_text())
    assert RunResults.from_json(json.loads(out)).predictor_matrices()["tag"].symmetric is False


@pytest.mark.parametrize("version", [None, 1])
def test_results_of_another_version_are_one_error_line(run_dir, capsys, version):
    data = synthetic_results().to_json()
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    (run_dir / "results.json").write_text(json.dumps(data))
    assert main(["show", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"results of version {version!r}; this harness reads version 2" in err and "rerun" in err


def test_incomplete_results_are_one_error_line(run_dir, capsys):
    data = synthetic_results().to_json()
    del data["groups"]
    (run_dir / "results.json").write_text(json.dumps(data))
    assert main(["show", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "incomplete results" in err


def test_run_prints_the_science_after_its_gap_table(capsys):
    print_science(synthetic_results().to_json())  # `harness run` passes the JSON form
    err = capsys.readouterr().err
    assert "MTL - STL gap per task" not in err  # `harness run` printed it already
    assert "trained groups" in err and "pair gaps (the measured outcome)" in err and "noise ceiling" in err


def test_a_run_without_pairs_or_scores_says_so():
    data = synthetic_results()
    bare = RunResults(data.plan, data.training, data.tasks, data.groups[:1], {}, {}, gap_by_size=data.gap_by_size)
    items = [i for i in report_items(bare) if isinstance(i, str)]
    assert "pair gaps: not measured (run with --pairs to train every pair)" in items
    assert "noise ceiling: not measured" in items
