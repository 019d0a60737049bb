"""The whole protocol end to end: the science-smoke profile on three spine tasks (tiny model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.cli import main

pytestmark = pytest.mark.slow

TASKS = "cervical.disc,cervical.canal_stenosis,cervical.hemangioma"


@pytest.fixture(scope="module")
def science_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("science") / "run"
    args = ["run", "--plugin", "spine", "--profile", "science-smoke", "--tasks", TASKS, "--output", str(out)]
    assert main(args) == 0
    return out


def _results(run):
    return json.loads((run / "results.json").read_text())


def test_every_stage_ran_and_every_predictor_has_a_matrix(science_run):
    results = _results(science_run)
    assert results["version"] == 2 and results["plan"]["stages"] == ["stl", "init", "all", "pairs", "groups"]
    kinds = [j["kind"] for j in results["jobs"].values()]
    assert kinds.count("stl") == 9 and kinds.count("init") == 3  # 3 tasks x 3 seeds; one untrained model per seed
    assert kinds.count("mtl") >= 3 * 3 + 3  # every pair and the all-task run, per seed
    predictors = results["predictors"]
    for name in ("cka_linear", "cka_linear_min", "cka_debiased", "cka_standardized", "grad_cosine_init",
                 "grad_cosine_train", "tag", "label_nmi", "size_ratio", "random"):  # fmt: skip
        assert predictors[name]["error"] is None, (name, predictors[name]["error"])
        m = np.array(predictors[name]["matrix"], dtype=float)
        assert m.shape == (3, 3) and np.isfinite(m).all(), name
    cka = np.array(predictors["cka_linear"]["matrix"])
    np.testing.assert_allclose(np.diag(cka), 1.0)
    assert ((cka >= -1e-9) & (cka <= 1 + 1e-9)).all()
    assert (np.array(predictors["cka_linear_min"]["matrix"]) <= cka + 1e-12).all()  # min over layers <= mean
    details = predictors["cka_linear"]["details"]
    assert len(details["per_layer"]) == 3 and details["layers"]  # tiny BERT: embeddings + 2 layers
    assert all(details["ceiling"][t] is not None for t in TASKS.split(","))  # 3 seeds: a ceiling per task
    assert details["floor"] < min(np.array(cka)[~np.eye(3, dtype=bool)])  # shuffled pairing scores lowest
    cosine = np.array(predictors["grad_cosine_train"]["matrix"])
    assert ((cosine >= -1 - 1e-9) & (cosine <= 1 + 1e-9)).all()
    np.testing.assert_allclose(np.diag(cosine), 1.0, atol=1e-6)


def test_scores_ceiling_and_regret_are_reported(science_run):
    results = _results(science_run)
    G = np.array(results["pair_gaps"]["values"], dtype=float)
    assert G.shape == (3, 3, 3) and np.isnan(G[:, 0, 0]).all() and np.isfinite(G[:, 0, 1]).all()
    assert results["scores"]["noise_ceiling"] is not None
    for name, score in results["scores"]["predictors"].items():
        assert score["pairs"] is not None, (name, score["notes"])
        assert -1 <= score["pairs"]["value"] <= 1 and 0 < score["pairs"]["p_value"] <= 1
        assert score["negative_transfer"] is not None and score["cost_share"] is not None
    groupers = results["groupers"]
    assert {"affinity:tag", "cluster:cka_linear", "pair_gaps", "(all tasks together)", "(each task alone)"} <= set(
        groupers
    )
    measured = [g for g in groupers.values() if g["mean_gap"] is not None]
    assert min(g["regret"] for g in measured) == 0.0 and all(g["regret"] >= 0 for g in measured)
    assert groupers["pair_gaps"]["cost_seconds"] > 0  # the pair sweep it needed
    sizes = [row["size"] for row in results["gap_by_size"]]
    assert sizes[0] == 2 and 3 in sizes


def test_show_prints_heatmaps_scores_and_groupers(science_run, capsys):
    assert main(["show", str(science_run)]) == 0
    err = capsys.readouterr().err
    for text in ("pair gaps", "cka_linear", "tag", "noise ceiling", "regret"):
        assert text in err, text


def test_rerun_reuses_every_job(science_run, capsys):
    before = {p.parent.name: p.stat().st_mtime_ns for p in science_run.glob("jobs/*/result.json")}
    args = ["run", "--plugin", "spine", "--profile", "science-smoke", "--tasks", TASKS, "--output", str(science_run)]
    assert main([*args, "--resume"]) == 0
    after = {p.parent.name: p.stat().st_mtime_ns for p in science_run.glob("jobs/*/result.json")}
    assert after == before  # nothing trained again, no job rewritten
