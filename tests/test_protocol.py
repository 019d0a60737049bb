"""The protocol layer without training: job specs, the phased plan, predictors, groupers, scores, regret."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from harness.api import Grouper, Predictor
from harness.core.config import RunConfig
from harness.errors import ConfigError, PluginError
from harness.protocol.gaps import Outcomes, gap_estimate, pair_gap_matrix
from harness.protocol.plan import JobSpec, LoadSpec, PluginSpec, make_plan, parse_stages
from harness.protocol.results import JobResult, PredictorMatrix, RunResults
from harness.protocol.science import check_matrix, compute_predictors, group_results, propose_groups, score_predictors

TASKS = ("a", "b", "c", "d")


def _plan(**kw):
    cfg = RunConfig(model="tiny", seeds=kw.pop("seeds", 2))
    return make_plan(
        list(kw.pop("tasks", TASKS)),
        None,
        cfg,
        stages=parse_stages(None, kw.pop("pairs", True)),
        groupers=kw.pop("groupers", ()),
        load=LoadSpec(None, 0, "smoke", (("reports", "10"),)),
        plugins=PluginSpec(("toy",)),
    )


def test_job_specs_pickle_and_hash_their_content():
    plan = _plan()
    job = plan.stage_jobs("stl")[0]
    again = pickle.loads(pickle.dumps(job))
    assert again == job and again.key() == job.key()
    assert job.key().startswith("stl-0-a-")
    # anything that changes what the job computes changes the key ...
    other_seed = dataclasses.replace(job, seed=5)
    other_cfg = dataclasses.replace(job, config=dataclasses.replace(job.config, learning_rate=3e-4))
    other_data = dataclasses.replace(job, load=LoadSpec(None, 0, "smoke", (("reports", "11"),)))
    observed = dataclasses.replace(job, observe=True)
    assert len({job.key(), other_seed.key(), other_cfg.key(), other_data.key(), observed.key()}) == 5
    # ... what only changes which jobs a run has, or where plugins come from, does not
    protocol_only = dataclasses.replace(job, config=dataclasses.replace(job.config, pairs=False, seeds=7, groupers="x"))
    assert protocol_only.key() == job.key()
    assert dataclasses.replace(job, plugins=PluginSpec(("toy", "other"))).key() == job.key()


def test_unknown_job_kind_is_refused():
    with pytest.raises(ConfigError, match="job kind 'pair'"):
        JobSpec("pair", ("a", "b"), 0, RunConfig())


def test_phased_plan_lists_each_stage():
    plan = _plan()
    assert plan.stages == ("stl", "init", "all", "pairs", "groups")
    assert [len(plan.stage_jobs(s)) for s in ("stl", "init", "all", "pairs")] == [8, 2, 2, 12]
    stl = plan.stage_jobs("stl")[0]
    assert stl.features and stl.probe == TASKS  # every STL model is probed on the same rows
    mtl = plan.stage_jobs("all")[0]
    assert mtl.observe and mtl.tasks == TASKS
    groups = plan.stage_jobs("groups", [("a",), ("b", "c"), ("a", "d")])
    assert [j.tasks for j in groups] == [("b", "c"), ("a", "d")] * 2  # singletons are the STL models
    without_pairs = _plan(pairs=False)
    assert without_pairs.stage_jobs("pairs") == []


def test_stages_are_validated():
    assert parse_stages("all,stl", False) == ("stl", "all")
    assert parse_stages("stl", True) == ("stl", "pairs")
    with pytest.raises(ConfigError, match="unknown stage"):
        parse_stages("stl,pair", False)
    with pytest.raises(ConfigError, match="must include stl"):
        parse_stages("all", False)
    with pytest.raises(ConfigError, match="lists a task twice"):
        make_plan(["a", "a"], None, RunConfig())


def test_check_matrix_names_predictor_and_plugin():
    good, details = check_matrix({"matrix": np.eye(3), "details": {"x": 1}}, ["a", "b", "c"], "p", "plug")
    assert good.dtype == np.float64 and details == {"x": 1}
    with pytest.raises(
        PluginError, match=r"predictor 'p' \(plugin 'plug'\) returned shape \(2, 2\); expected \(3, 3\)"
    ):
        check_matrix(np.eye(2), ["a", "b", "c"], "p", "plug")
    with pytest.raises(PluginError, match="infinite"):
        check_matrix(np.full((2, 2), np.inf), ["a", "b"], "p", "plug")
    with pytest.raises(PluginError, match="not a numeric"):
        check_matrix("nope", ["a", "b"], "p", "plug")


class _Entry:
    def __init__(self, value, plugin="third"):
        self.value, self.plugin, self.name = value, plugin, value.name


class _Registry:
    def __init__(self, *values):
        self.items = {v.name: _Entry(v) for v in values}

    def __iter__(self):
        return iter(self.items.values())

    def entry(self, name):
        return self.items[name]

    def get(self, name):
        return self.items[name].value


class _Registries:
    def __init__(self, predictors=(), groupers=()):
        self.predictors, self.groupers = _Registry(*predictors), _Registry(*groupers)


def _task_specs(names=TASKS):
    return {t: type("Spec", (), {"name": t})() for t in names}


def test_predictors_are_computed_or_say_why_not():
    plan = _plan()
    regs = _Registries(
        predictors=[
            Predictor("ident", lambda tasks, art: np.eye(len(tasks)), needs=("train_sizes",)),
            Predictor("needs_features", lambda tasks, art: np.eye(len(tasks)), needs=("features",)),
            Predictor("undefined", lambda tasks, art: np.full((len(tasks), len(tasks)), np.nan)),
            Predictor("raises", lambda tasks, art: 1 / 0),
            Predictor("shape", lambda tasks, art: np.eye(2)),
            Predictor("liar", lambda tasks, art: np.triu(np.ones((len(tasks), len(tasks))))),
            Predictor("opaque", lambda tasks, art: {"matrix": np.eye(len(tasks)), "details": {"x": object()}}),
        ]
    )
    out = compute_predictors(plan, _task_specs(), regs, {"train_sizes": {"a": 1}, "costs": {"train_sizes": 2.5}})
    assert out["ident"].matrix is not None and out["ident"].seconds >= 2.5  # its artifact's cost is charged
    assert out["needs_features"].matrix is None and "needs features" in out["needs_features"].error
    assert out["undefined"].matrix is None and "all NaN" in out["undefined"].error
    # a faulty predictor is that predictor's failure, named with its plugin; the others are computed
    assert out["raises"].error == "predictor 'raises' (plugin 'third') raised ZeroDivisionError: division by zero"
    assert "returned shape (2, 2); expected (4, 4)" in out["shape"].error
    assert "declared symmetric but returned an asymmetric matrix" in out["liar"].error
    assert "details that are not JSON" in out["opaque"].error


def test_a_faulty_grouper_is_recorded_naming_it_and_the_run_goes_on():
    plan = _plan(groupers=("bad",))
    regs = _Registries(groupers=[Grouper("bad", lambda tasks, ctx: [["a", "b"], ["b", "c"]])])
    proposals, failures = propose_groups(plan, _task_specs(), regs, {}, None)
    assert proposals == {"bad": None}
    assert failures["bad"].startswith("grouper 'bad' (plugin 'third'):") and "'b'" in failures["bad"]
    missing = _Registries(groupers=[Grouper("bad", lambda tasks, ctx: [["a", "b"], ["c"]])])
    assert "'d'" in propose_groups(plan, _task_specs(), missing, {}, None)[1]["bad"]

    def boom(tasks, ctx):
        raise ValueError("no idea")

    raising = _Registries(groupers=[Grouper("bad", boom)])
    assert propose_groups(plan, _task_specs(), raising, {}, None)[1] == {
        "bad": "grouper 'bad' (plugin 'third') raised ValueError: no idea"
    }
    # the failure is the grouper's: it is reported in the grouper table, the others go on
    out = group_results(plan, {"bad": None}, [], {}, 0.0, {"bad": "grouper 'bad' ... raised"})
    assert out["bad"].partition is None and "raised" in out["bad"].note


def _result(kind, tasks, seed, metric):
    return JobResult(
        kind=kind,
        tasks=list(tasks),
        seed=seed,
        best_epoch=1,
        epochs_trained=1,
        splits={t: "test" for t in tasks},
        metrics={t: {"mse": metric[t]} for t in tasks},
        dev={},
        history=[],
        data_fingerprints={},
    )


def test_gap_sign_follows_the_metric_direction():
    """For a lower-is-better metric a smaller MTL error is a positive gap (sharing helped)."""
    results = {
        "s": _result("stl", ["a"], 0, {"a": 0.5}),
        "m": _result("mtl", ["a", "b"], 0, {"a": 0.3, "b": 0.1}),
    }
    est = gap_estimate("a", ["a", "b"], [0], Outcomes(results), "mse", higher=False)
    assert est.values == [pytest.approx(0.2)] and est.ci95 is None


def _pair_results(gap, seeds=(0, 1, 2), noise=0.0):
    """STL score 0.5 for every task; pair (i, j) scores 0.5 + gap[i, j] (+ seeded noise) for i."""
    rng = np.random.default_rng(0)
    results = {}
    for s in seeds:
        for t in TASKS:
            results[f"stl{t}{s}"] = _result("stl", [t], s, {t: 0.5})
        for i in range(len(TASKS)):
            for j in range(i + 1, len(TASKS)):
                a, b = TASKS[i], TASKS[j]
                scores = {a: 0.5 + gap[i, j] + noise * rng.normal(), b: 0.5 + gap[j, i] + noise * rng.normal()}
                results[f"m{a}{b}{s}"] = _result("mtl", [a, b], s, scores)
    return results


PLANTED = np.array(
    [
        [0, 0.2, -0.1, -0.2],
        [0.2, 0, -0.1, -0.2],
        [-0.1, -0.1, 0, 0.05],
        [-0.2, -0.2, 0.05, 0],
    ]
)


def test_a_predictor_equal_to_the_gaps_scores_rho_one_and_random_does_not():
    plan = _plan(seeds=3)
    outcomes = Outcomes(_pair_results(PLANTED, noise=0.01))
    primary = {t: ("mse", True) for t in TASKS}
    G = pair_gap_matrix(TASKS, plan.seeds, outcomes, primary)
    assert G.shape == (3, 4, 4) and np.isnan(G[:, 0, 0]).all()
    np.testing.assert_allclose(G.mean(axis=0)[0, 1], 0.2, atol=0.05)
    rng = np.random.default_rng(1)
    predictors = {
        "oracle": PredictorMatrix("oracle", list(TASKS), PLANTED.copy(), True, 1.0, []),
        "noise": PredictorMatrix("noise", list(TASKS), rng.normal(size=(4, 4)), False, 1.0, []),
        "missing": PredictorMatrix("missing", list(TASKS), None, True, 0.0, [], error="needs features"),
    }
    scores = score_predictors(plan, predictors, G, [], pair_seconds=100.0)
    oracle = scores["predictors"]["oracle"]
    assert oracle["pairs"]["value"] == pytest.approx(1.0, abs=0.05)
    # 4 tasks have 24 label permutations and a, b are interchangeable in PLANTED: p = 2/24 at best
    assert oracle["pairs"]["p_value"] == pytest.approx(2 / 24, abs=0.02)
    assert oracle["cost_share"] == pytest.approx(0.01)
    assert scores["noise_ceiling"]["value"] > 0.8  # low noise: halves of the seeds agree
    assert oracle["fraction_of_ceiling"] == pytest.approx(1.0, abs=0.1)
    assert abs(scores["predictors"]["noise"]["pairs"]["value"]) < 0.9
    assert scores["predictors"]["missing"]["notes"] == ["needs features"]
    # negative transfer: the 8 ordered pairs between {a, b} and {c, d} are significantly below zero;
    # the oracle flags P below its median (-0.1): the 4 pairs at -0.2, all truly negative
    detection = oracle["negative_transfer"]
    assert (detection["precision"], detection["recall"], detection["tp"]) == (1.0, 0.5, 4)


def test_regret_of_each_grouper_against_the_best_measured_partition():
    plan = _plan(seeds=1)
    g = lambda tasks, gaps: {  # noqa: E731
        "tasks": list(tasks),
        "gaps": {t: {"mean": v, "seeds": [0], "values": [v]} for t, v in zip(tasks, gaps, strict=True)},
    }
    groups = [g(("a", "b"), (0.2, 0.2)), g(TASKS, (-0.1, -0.1, -0.3, -0.3)), g(("c", "d"), (0.05, 0.05))]
    proposals = {
        "good": [["a", "b"], ["c", "d"]],
        "half": [["a", "b"], ["c"], ["d"]],
        "untrained": [["a", "c"], ["b", "d"]],
    }
    out = group_results(plan, proposals, groups, {}, pair_seconds=0.0)
    assert out["good"].mean_gap == pytest.approx(0.125) and out["good"].regret == 0.0 and out["good"].rank == 1
    assert out["half"].mean_gap == pytest.approx(0.1) and out["half"].regret == pytest.approx(0.025)
    assert out["(all tasks together)"].mean_gap == pytest.approx(-0.2)
    assert out["(each task alone)"].mean_gap == 0.0
    assert out["untrained"].regret is None and "not trained" in out["untrained"].note


def test_results_roundtrip_and_refuse_another_version(tmp_path):
    from harness.errors import RunError

    p = PredictorMatrix("x", ["a", "b"], np.array([[1.0, np.nan], [0.5, 1.0]]), False, 2.0, ["features"])
    back = PredictorMatrix.from_json(p.to_json())
    assert np.isnan(back.matrix[0, 1]) and back.matrix[1, 0] == 0.5
    results = RunResults({}, {}, {}, [], {}, {}, predictors={"x": p.to_json()})
    assert RunResults.from_json(results.to_json()).predictor_matrices()["x"].seconds == 2.0
    with pytest.raises(RunError, match="version 1; this harness reads version 2"):
        RunResults.from_json({**results.to_json(), "version": 1}, tmp_path / "results.json")


def test_predictor_and_grouper_registrations_are_checked():
    with pytest.raises(PluginError, match="needs must be a list of artifact names"):
        Predictor("p", lambda t, a: None, needs="train_sizes")
    with pytest.raises(PluginError, match="unknown artifact\\(s\\) 'bogus'"):
        Predictor("p", lambda t, a: None, needs=("bogus",))
    with pytest.raises(PluginError, match="no ':'"):
        Grouper("x:y", lambda t, c: [])
    with pytest.raises(PluginError, match="invalid"):
        Predictor("Bad Name", lambda t, a: None)


def test_explicit_stages_are_the_stages(monkeypatch):
    """A profile's pairs key does not add a stage the user left out of --stages; --pairs does."""
    assert parse_stages("stl,all", False) == ("stl", "all")
    assert parse_stages("stl,all", True) == ("stl", "all", "pairs")
    assert parse_stages(None, True) == ("stl", "init", "all", "pairs", "groups")


def test_run_files_are_readable_and_a_failed_write_leaves_nothing(tmp_path):
    import os

    from harness.protocol.rundir import write_json

    write_json(tmp_path / "a.json", {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(TypeError):
        write_json(tmp_path / "b.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
