"""The built-in predictors: task x task matrices from a run's artifacts (registered by the core plugin).

Every function here is ``fn(tasks, artifacts) -> {"matrix": [T, T] float64, "details": {...}}``
with ``matrix[i, j]`` = the predicted benefit to task i of sharing a model with task j
(higher = should share), in the order of ``tasks``. The artifacts a run provides (README,
"Write a plugin"):

- ``features``: {task: [array [L+1, n, d] per seed]}: each STL model's pooled hidden states
  (embeddings and every transformer layer) on one fixed probe set; ``init_features``: the same
  for the untrained model, one per seed; ``layers``: the layer names.
- ``init_gradients``: [per seed] gradient alignment at the starting encoder (observation dict).
- ``training``: [per seed] the all-task MTL run's observer state (gradient cosine, TAG).
- ``train_sizes``: {task: labelled training rows}; ``input_groups``: {task: input stream};
  ``train_labels``: {task: array of the training labels, in the stream's row order}.
- ``seed``: the run's first seed.

Sources: linear CKA, Kornblith et al. 2019 (ICML); debiased CKA, Nguyen et al. 2021 (ICLR)
after Song et al. 2012; gradient cosine, Yu et al. 2020 (PCGrad); lookahead affinity, Fifty et
al. 2021 (NeurIPS, TAG); normalised mutual information, scikit-learn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.errors import AnalysisError


def _names(tasks: Sequence[Any]) -> list[str]:
    return [getattr(t, "name", t) for t in tasks]


def _need(artifacts: Mapping[str, Any], key: str, stage: str) -> Any:
    if key not in artifacts or not artifacts[key]:
        raise AnalysisError(f"needs the {key!r} artifact, made by the {stage!r} stage of harness run; include it")
    return artifacts[key]


def cka(
    tasks: Sequence[Any],
    artifacts: Mapping[str, Any],
    *,
    debiased: bool = False,
    standardize: bool = False,
    summary: str = "mean",
) -> dict[str, Any]:
    """Layerwise CKA between the STL models' probe-set features, averaged over seeds.

    ``matrix`` = the mean (``summary="mean"``) or minimum (``"min"``: the paper's "across all
    hidden layers" read strictly) over layers of the seed-mean per-layer CKA [L+1, T, T].
    Details: ``per_layer``, ``layers``; ``ceiling`` per task (CKA between two seeds of the same
    task, mean over layers and seed pairs: how similar two runs of one task are; None with one
    seed); ``floor`` (mean over task pairs of CKA with the probe rows of one model shuffled: what
    unrelated representations score); ``vs_untrained`` per task (CKA of the STL model against the
    untrained encoder on the same probe set: how far fine-tuning moved it).
    """
    from harness.analyses.cka import layerwise_cka

    names = _names(tasks)
    features = _need(artifacts, "features", "stl")
    missing = [t for t in names if t not in features]
    if missing:
        raise AnalysisError(f"no probe-set features for {', '.join(missing)}")
    seeds = min(len(features[t]) for t in names)
    per_seed = [
        layerwise_cka([_layers(features[t][s]) for t in names], debiased=debiased, standardize=standardize).per_layer
        for s in range(seeds)
    ]
    per_layer = np.mean(per_seed, axis=0)  # [L, T, T]
    matrix = per_layer.mean(axis=0) if summary == "mean" else per_layer.min(axis=0)
    details: dict[str, Any] = {
        "per_layer": per_layer,
        "layers": list(artifacts.get("layers") or [f"layer {k}" for k in range(per_layer.shape[0])]),
        "summary": summary,
        "estimator": "debiased (unbiased HSIC)" if debiased else "biased",
        "standardized": standardize,
        "seeds": seeds,
    }
    details["ceiling"] = _ceiling(features, names, debiased, standardize)
    details["floor"] = _floor(features, names, debiased, standardize, int(artifacts.get("seed", 0)))
    if artifacts.get("init_features"):
        init = artifacts["init_features"][0]
        details["vs_untrained"] = {
            t: float(
                layerwise_cka([_layers(features[t][0]), _layers(init)], debiased=debiased).per_layer[:, 0, 1].mean()
            )
            for t in names
        }
    return {"matrix": matrix, "details": details}


def _layers(x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(layer, dtype=np.float64) for layer in x]


def _ceiling(features: Mapping[str, Any], names: Sequence[str], debiased: bool, standardize: bool) -> dict[str, Any]:
    from harness.analyses.cka import layerwise_cka

    out: dict[str, Any] = {}
    for t in names:
        runs = features[t]
        if len(runs) < 2:
            out[t] = None
            continue
        m = layerwise_cka([_layers(r) for r in runs], debiased=debiased, standardize=standardize).per_layer.mean(axis=0)
        out[t] = float(m[~np.eye(len(runs), dtype=bool)].mean())
    return out


def _floor(
    features: Mapping[str, Any], names: Sequence[str], debiased: bool, standardize: bool, seed: int
) -> float | None:
    from harness.analyses.cka import layerwise_cka

    if len(names) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = _layers(features[names[i]][0]), _layers(features[names[j]][0])
            perm = rng.permutation(a[0].shape[0])
            shuffled = [layer[perm] for layer in b]
            values.append(
                layerwise_cka([a, shuffled], debiased=debiased, standardize=standardize).per_layer[:, 0, 1].mean()
            )
    return float(np.mean(values))


def _observed(artifacts: Mapping[str, Any], key: str, stage: str, names: Sequence[str], field: str) -> np.ndarray:
    """Seed-mean of one observed [T', T'] matrix, mapped into ``names`` order (NaN for unobserved tasks)."""
    runs = [r for r in _need(artifacts, key, stage) if r and r.get(field) is not None]
    if not runs:
        raise AnalysisError(f"the {key!r} artifact has no {field!r} measurement (too few training steps?)")
    out = np.full((len(names), len(names)), np.nan)
    index = {t: k for k, t in enumerate(runs[0]["tasks"])}
    mean = np.mean([np.asarray(r[field], dtype=np.float64) for r in runs], axis=0)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a in index and b in index:
                out[i, j] = mean[index[a], index[b]]
    return out


def gradient_cosine_init(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """Cosine of the tasks' loss gradients on the shared encoder at the starting encoder (before training)."""
    names = _names(tasks)
    matrix = _observed(artifacts, "init_gradients", "init", names, "cosine_overall")
    return {"matrix": matrix, "details": _gradient_details(artifacts, "init_gradients", names, matrix)}


def gradient_cosine_training(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """Cosine of the tasks' loss gradients during the all-task MTL run, averaged over measurements."""
    names = _names(tasks)
    matrix = _observed(artifacts, "training", "all", names, "cosine_overall")
    return {"matrix": matrix, "details": _gradient_details(artifacts, "training", names, matrix)}


def _gradient_details(
    artifacts: Mapping[str, Any], key: str, names: Sequence[str], matrix: np.ndarray
) -> dict[str, Any]:
    """Per-layer cosines, conflicting fraction, and the mean cosine on shared- vs disjoint-input pairs."""
    runs = [r for r in artifacts[key] if r]
    details: dict[str, Any] = {
        "layers": runs[0].get("layers", []),
        "measurements": [r.get("measurements") for r in runs],
    }
    if runs[0].get("cosine_per_layer") is not None:
        details["per_layer"] = np.mean([np.asarray(r["cosine_per_layer"], dtype=np.float64) for r in runs], axis=0)
        details["per_layer_tasks"] = list(runs[0]["tasks"])
    if runs[0].get("conflicting_fraction") is not None:
        details["conflicting_fraction"] = _observed(artifacts, key, "", names, "conflicting_fraction")
    groups = artifacts.get("input_groups", {})
    shared: list[float] = []
    disjoint: list[float] = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if i < j and np.isfinite(matrix[i, j]):
                (shared if groups.get(a) == groups.get(b) else disjoint).append(matrix[i, j])
    details["mean_shared_inputs"] = float(np.mean(shared)) if shared else None
    details["mean_disjoint_inputs"] = float(np.mean(disjoint)) if disjoint else None
    return details


def tag_affinity(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """TAG lookahead affinity from the all-task MTL run, transposed to the predictor orientation.

    The observer measures Z[i, j] = 1 - L_j(after a step on task i) / L_j (row = task stepped
    on); the predictor is P[i, j] = Z[j, i]: how much a step on j lowers i's loss.
    """
    names = _names(tasks)
    z = _observed(artifacts, "training", "all", names, "tag")
    return {"matrix": z.T.copy(), "details": {"orientation": "P[i, j] = Z[j, i]: j's lookahead step lowers i's loss"}}


def label_nmi(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised mutual information of two tasks' training labels on their shared rows (scikit-learn).

    NaN for tasks on different inputs (no shared rows) and for regression or multi-label tasks
    (no discrete label per row); rows unlabelled for either task are left out.
    """
    from sklearn.metrics import normalized_mutual_info_score

    names = _names(tasks)
    labels = _need(artifacts, "train_labels", "stl")
    groups = artifacts.get("input_groups", {})
    T = len(names)
    out = np.full((T, T), np.nan)
    for i, a in enumerate(names):
        out[i, i] = 1.0
        for j in range(i + 1, T):
            b = names[j]
            if groups.get(a) != groups.get(b) or a not in labels or b not in labels:
                continue
            x, y = np.asarray(labels[a]), np.asarray(labels[b])
            if x.ndim != 1 or y.ndim != 1 or x.dtype.kind == "f" or y.dtype.kind == "f":
                continue
            keep = (x >= 0) & (y >= 0)
            if keep.sum() >= 2:
                out[i, j] = out[j, i] = normalized_mutual_info_score(x[keep], y[keep])
    return {"matrix": out, "details": {"undefined": "tasks on different inputs, regression and multi-label tasks"}}


def size_ratio(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """min/max of the two tasks' labelled training rows (1 = equal sizes)."""
    names = _names(tasks)
    sizes = np.array([float(_need(artifacts, "train_sizes", "stl")[t]) for t in names])
    if (sizes <= 0).any():
        raise AnalysisError("a task has no labelled training row")
    return {"matrix": np.minimum.outer(sizes, sizes) / np.maximum.outer(sizes, sizes), "details": {"sizes": sizes}}


def random_matrix(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    """A seeded random symmetric matrix in [-1, 1]: the baseline every predictor must beat."""
    rng = np.random.default_rng(int(artifacts.get("seed", 0)))
    T = len(tasks)
    m = rng.uniform(-1, 1, size=(T, T))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 1.0)
    return {"matrix": m, "details": {}}
