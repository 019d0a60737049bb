"""Predictors, groupers and scores of one run, from its finished jobs (no training here).

- ``compute_predictors``: every registered predictor's matrix, validated ([T, T], numbers
  where defined), with its cost; a predictor that fails or lacks an artifact is recorded
  with the reason, never silently dropped.
- ``propose_groups``: each selected grouper's partition, checked to be a partition of the
  selected tasks (the error names the grouper and the plugin that registered it).
- ``score_predictors``: per predictor, Spearman rho against the measured pair gaps and
  against every trained group's gaps, the noise ceiling, negative-transfer detection, cost.
- ``group_results``: per grouper, the mean gap of its partition, its regret and cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.api import TaskSpec
from harness.errors import AnalysisError, HarnessError, PluginError
from harness.protocol.plan import Plan
from harness.protocol.results import GrouperResult, PredictorMatrix, PredictorScore

log = logging.getLogger("harness")

N_RESAMPLES = 1000  # permutations and bootstrap resamples per score


def check_matrix(
    value: Any, tasks: Sequence[str], name: str, plugin: str, symmetric: bool = False
) -> tuple[np.ndarray, dict[str, Any]]:
    """A predictor's output as (float64 [T, T], JSON-ready details); ``PluginError`` naming predictor
    and plugin otherwise (not numeric, complex, wrong shape, infinite, asymmetric though declared
    symmetric, details that are not JSON)."""
    import json

    from harness.protocol.results import nan_to_none

    details: dict[str, Any] = {}
    if isinstance(value, Mapping):
        details = dict(value.get("details") or {})
        value = value.get("matrix")
    try:
        json.dumps(nan_to_none(details))
    except (TypeError, ValueError) as exc:
        raise PluginError(f"predictor {name!r} (plugin {plugin!r}) returned details that are not JSON: {exc}") from None
    if np.iscomplexobj(value):
        raise PluginError(f"predictor {name!r} (plugin {plugin!r}) returned a complex matrix; return real numbers")
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PluginError(
            f"predictor {name!r} (plugin {plugin!r}) returned {type(value).__name__}, not a numeric task x task matrix"
        ) from None
    T = len(tasks)
    if m.shape != (T, T):
        raise PluginError(
            f"predictor {name!r} (plugin {plugin!r}) returned shape {m.shape}; expected ({T}, {T}) "
            f"for the {T} selected tasks in order"
        )
    if np.isinf(m).any():
        raise PluginError(f"predictor {name!r} (plugin {plugin!r}) returned an infinite entry; use NaN for undefined")
    if symmetric and not np.allclose(m, m.T, equal_nan=True, atol=1e-9):
        raise PluginError(
            f"predictor {name!r} (plugin {plugin!r}) is declared symmetric but returned an asymmetric matrix; "
            "register it with symmetric=False"
        )
    return m, details


def compute_predictors(
    plan: Plan, tasks: Mapping[str, TaskSpec], registries: Any, artifacts: Mapping[str, Any]
) -> dict[str, PredictorMatrix]:
    """Every registered predictor on the selected tasks; unavailable ones carry ``error``."""
    specs = [tasks[t] for t in plan.tasks]
    costs = artifacts.get("costs", {})
    out: dict[str, PredictorMatrix] = {}
    for entry in registries.predictors:
        p = entry.value
        needs = list(p.needs)
        spent = float(sum(costs.get(n, 0.0) for n in needs))
        missing = [n for n in needs if not artifacts.get(n)]
        if missing:
            reason = f"needs {', '.join(missing)}: " + ", ".join(_STAGE_OF.get(n, "?") for n in missing)
            out[p.name] = PredictorMatrix(
                p.name, list(plan.tasks), None, p.symmetric, 0.0, needs, p.description, error=reason
            )
            continue
        start = time.perf_counter()
        error: str | None = None
        try:
            matrix, details = check_matrix(p.fn(specs, artifacts), plan.tasks, p.name, entry.plugin, p.symmetric)
        except (AnalysisError, HarnessError) as exc:  # a plugin's fault stays that predictor's
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 -- any failure of plugin code is reported, the run goes on
            error = f"predictor {p.name!r} (plugin {entry.plugin!r}) raised {type(exc).__name__}: {exc}"
        if error is not None:
            out[p.name] = PredictorMatrix(
                p.name, list(plan.tasks), None, p.symmetric, 0.0, needs, p.description, error=error
            )
            log.warning("predictor %s unavailable: %s", p.name, error)
            continue
        seconds = spent + time.perf_counter() - start
        if len(plan.tasks) > 1 and not np.isfinite(matrix[~np.eye(len(plan.tasks), dtype=bool)]).any():
            reason = ALL_NAN
            out[p.name] = PredictorMatrix(
                p.name, list(plan.tasks), None, p.symmetric, seconds, needs, p.description, error=reason
            )
            continue
        out[p.name] = PredictorMatrix(
            p.name, list(plan.tasks), matrix, p.symmetric, seconds, needs, p.description, details
        )
    return out


#: A predictor's error when its matrix is NaN for every pair of the selected tasks.
ALL_NAN = "undefined for every pair of the selected tasks (all NaN)"


def is_fault(p: PredictorMatrix) -> bool:
    """True when predictor ``p`` failed by its plugin's fault: it raised something other than a
    ``HarnessError``/``AnalysisError``, returned what ``check_matrix`` refuses, or NaN for every pair.
    False when it has a matrix, lacks an input artifact (``needs``), or found itself undefined on
    these inputs (an ``AnalysisError``: too few steps, a constant representation, ...)."""
    error = p.error or ""
    return error == ALL_NAN or error.startswith(f"predictor {p.name!r} (plugin ")


_STAGE_OF = {
    "features": "the stl and init stages",
    "init_gradients": "the init stage",
    "training": "the all stage (and observe_every > 0)",
    "train_sizes": "the data check",
    "train_labels": "the data check",
}


def parse_grouper(text: str) -> tuple[str, str | None]:
    name, _, arg = text.partition(":")
    return name.strip(), (arg.strip() or None)


def propose_groups(
    plan: Plan,
    tasks: Mapping[str, TaskSpec],
    registries: Any,
    matrices: Mapping[str, np.ndarray],
    pair_gaps: np.ndarray | None,
) -> tuple[dict[str, list[list[str]] | None], dict[str, str]]:
    """Each grouper's partition (None when its predictor or the pair gaps are unavailable, or it
    failed), and the one-line error of each grouper that failed (raised, or no partition)."""
    from harness.grouping import check_partition

    specs = [tasks[t] for t in plan.tasks]
    gaps = None if pair_gaps is None else _mean_gaps(pair_gaps)
    out: dict[str, list[list[str]] | None] = {}
    failures: dict[str, str] = {}
    for text in plan.groupers:
        name, arg = parse_grouper(text)
        entry = registries.groupers.entry(name)
        grouper = entry.value
        if grouper.uses == "predictor" and arg not in matrices:
            log.warning("grouper %s: predictor %s has no matrix in this run; skipped", text, arg)
            out[text] = None
            continue
        if grouper.uses == "pair_gaps" and gaps is None:
            log.warning("grouper %s: needs --pairs; skipped", text)
            out[text] = None
            continue
        context = {"matrices": dict(matrices), "pair_gaps": gaps, "predictor": arg, "seed": plan.seeds[0]}
        source = f"grouper {text!r} (plugin {entry.plugin!r})"
        try:
            checked = check_partition(grouper.fn(specs, context), list(plan.tasks), source)
        except HarnessError as exc:  # a plugin's fault stays that grouper's
            failures[text] = str(exc)
        except Exception as exc:  # noqa: BLE001 -- any failure of plugin code is reported, the run goes on
            failures[text] = f"{source} raised {type(exc).__name__}: {exc}"
        else:
            out[text] = [list(g) for g in checked]
            continue
        log.warning("%s", failures[text])
        out[text] = None
    return out, failures


def _mean_gaps(G: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an unmeasured pair is NaN on every seed: mean NaN
        mean = np.nanmean(G, axis=0)
    np.fill_diagonal(mean, 0.0)
    return mean


def _masked(P: np.ndarray, G: np.ndarray) -> np.ndarray:
    """G with the pairs where P is undefined (NaN) marked unmeasured: scores use defined pairs only."""
    G = G.copy()
    G[:, ~np.isfinite(P)] = np.nan
    return G


def score_predictors(
    plan: Plan,
    predictors: Mapping[str, PredictorMatrix],
    G: np.ndarray | None,
    groups: Sequence[Mapping[str, Any]],
    pair_seconds: float,
) -> dict[str, Any]:
    """The noise ceiling and, per predictor, every score that the run's measurements allow."""
    from harness.scoring import (
        fraction_of_ceiling,
        group_affinity_vs_gap,
        negative_transfer_detection,
        noise_ceiling,
        rank_correlation,
    )
    from harness.scoring.score import Score

    seed = plan.seeds[0]
    out: dict[str, Any] = {"noise_ceiling": None, "predictors": {}, "notes": []}
    ceiling = None
    if G is not None and len(plan.seeds) >= 2:
        try:
            ceiling = noise_ceiling(G, seed=seed, tasks=plan.tasks)
            out["noise_ceiling"] = ceiling.to_dict()
        except AnalysisError as exc:
            out["notes"].append(f"noise ceiling: {exc}")
    elif G is not None:
        out["notes"].append("noise ceiling: needs at least 2 seeds (--seeds 2)")
    else:
        out["notes"].append("pair scores and noise ceiling: run with --pairs")
    index = {t: k for k, t in enumerate(plan.tasks)}
    trained = [g for g in groups if len(g["tasks"]) > 1]
    for name, p in predictors.items():
        notes: list[str] = []
        if p.matrix is None:
            out["predictors"][name] = PredictorScore(
                name, notes=[p.error or "unavailable"], seconds=p.seconds
            ).to_json()
            continue
        P = p.matrix
        pairs = groups_score = detection = None
        fraction = None
        filled = np.where(np.isfinite(P), P, 0.0)
        if G is not None:
            Gm = _masked(P, G)
            try:
                pairs = rank_correlation(
                    filled,
                    Gm,
                    n_permutations=N_RESAMPLES,
                    n_bootstrap=N_RESAMPLES if len(plan.seeds) > 1 else 0,
                    seed=seed,
                    tasks=plan.tasks,
                )
                if ceiling is not None:
                    fraction = fraction_of_ceiling(pairs, ceiling)
            except AnalysisError as exc:
                notes.append(f"pairs: {exc}")
            try:
                detection = negative_transfer_detection(filled, Gm, tasks=plan.tasks).to_dict()
            except AnalysisError as exc:
                notes.append(f"negative transfer: {exc}")
        if trained:
            members = [[index[t] for t in g["tasks"]] for g in trained]
            gaps = [_seed_gaps(g, plan.seeds) for g in trained]
            usable = [k for k, m in enumerate(members) if _defined(P, m)]
            try:
                if not usable:
                    raise AnalysisError("no trained group whose pairs the predictor defines")
                groups_score = group_affinity_vs_gap(
                    filled,
                    [members[k] for k in usable],
                    [gaps[k] for k in usable],
                    n_permutations=N_RESAMPLES,
                    n_bootstrap=N_RESAMPLES,
                    seed=seed,
                )
            except AnalysisError as exc:
                notes.append(f"groups: {exc}")
        share = p.seconds / pair_seconds if pair_seconds > 0 else None
        out["predictors"][name] = PredictorScore(
            name,
            pairs=pairs.to_dict() if isinstance(pairs, Score) else None,
            groups=groups_score.to_dict() if groups_score is not None else None,
            fraction_of_ceiling=fraction,
            negative_transfer=detection,
            cost_share=share,
            seconds=p.seconds,
            notes=notes,
        ).to_json()
    return out


def _with_fallback(compute: Any, notes: list[str], what: str, bootstrap: bool) -> Any:
    """The score with its bootstrap CI; without a CI (and a note saying why) when the CI is undefined."""
    if bootstrap:
        try:
            return compute(N_RESAMPLES)
        except AnalysisError as exc:
            if "bootstrap" not in str(exc):
                raise
            notes.append(f"{what}: no CI ({exc})")
    else:
        notes.append(f"{what}: no CI with one seed")
    return compute(0)


def _defined(P: np.ndarray, members: Sequence[int]) -> bool:
    return all(np.isfinite(P[i, j]) for i in members for j in members if i != j)


def _seed_gaps(group: Mapping[str, Any], seeds: Sequence[int]) -> np.ndarray:
    """[seeds, members] gaps of a trained group (NaN where a seed is missing)."""
    out = np.full((len(seeds), len(group["tasks"])), np.nan)
    for k, t in enumerate(group["tasks"]):
        est = group["gaps"][t]
        for s, v in zip(est["seeds"], est["values"], strict=True):
            out[list(seeds).index(s), k] = v
    return out


def group_results(
    plan: Plan,
    proposals: Mapping[str, list[list[str]] | None],
    groups: Sequence[Mapping[str, Any]],
    predictors: Mapping[str, PredictorMatrix],
    pair_seconds: float,
    failures: Mapping[str, str] | None = None,
) -> dict[str, GrouperResult]:
    """Per grouper: the mean gap over tasks of its partition, regret against the best measured
    partition (all-task, singletons, and every grouper's), and the training seconds it cost."""
    from harness.scoring import canonical_partition, grouper_summary

    gap_of = {frozenset(g["tasks"]): g["gaps"] for g in groups}

    def mean_gap(partition: Sequence[Sequence[str]]) -> float | None:
        values = []
        for group in partition:
            if len(group) == 1:
                values.append(0.0)  # alone = its STL model
                continue
            gaps = gap_of.get(frozenset(group))
            if gaps is None or any(gaps[t]["mean"] is None for t in group):
                return None
            values += [gaps[t]["mean"] for t in group]
        return float(np.mean(values))

    candidates: dict[str, list[list[str]]] = {
        "(all tasks together)": [list(plan.tasks)],
        "(each task alone)": [[t] for t in plan.tasks],
    }
    candidates.update({k: v for k, v in proposals.items() if v})
    measured: dict[Any, float] = {}
    for partition in candidates.values():
        value = mean_gap(partition)
        if value is not None:
            measured.setdefault(canonical_partition(partition), value)
    out: dict[str, GrouperResult] = {}
    for name, partition in candidates.items():
        cost = _grouper_cost(name, predictors, pair_seconds)
        if partition is None or mean_gap(partition) is None:
            note = "not measured: a group of its partition was not trained" if partition else "skipped"
            out[name] = GrouperResult(name, partition, None, None, None, cost, note)
            continue
        summary = grouper_summary(partition, measured)
        out[name] = GrouperResult(name, partition, summary.chosen_gap, summary.regret, summary.rank, cost)
    for name in proposals:
        if name not in out:
            note = (failures or {}).get(name, "skipped: its predictor has no matrix in this run, or --pairs is missing")
            out[name] = GrouperResult(name, None, None, None, None, 0.0, note)
    return out


def _grouper_cost(name: str, predictors: Mapping[str, PredictorMatrix], pair_seconds: float) -> float:
    grouper, arg = parse_grouper(name)
    if arg and arg in predictors:
        return predictors[arg].seconds
    if grouper == "pair_gaps":
        return pair_seconds
    return 0.0
