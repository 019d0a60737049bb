"""Benchmark: the harness's layer-wise CKA for every task pair against a per-pair Gram implementation.

A run extracts each STL model's probe-set features once (T forward passes, ``features.npy``:
[layers, rows, hidden]) and ``harness.analyses.cka.layerwise_cka`` centres each representation
and forms its Gram matrix once, then takes each of the T(T-1)/2 pairs per layer from those. The
reference below is what one writes without that care: for each pair, for each layer, build both
centred Gram matrices and compute the three HSICs. At 16 tasks and MiniLM's shape (7 layers,
256 probe rows, 384 wide) the two must agree (float64, |diff| < 1e-6) and the harness must be at
least ``MIN_RATIO`` times faster, medians of ``ROUNDS`` interleaved rounds (the ``ratio`` fixture).
Run with ``tox -e bench``.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.analyses.cka import layerwise_cka

TASKS, LAYERS, ROWS, WIDTH = 16, 7, 256, 384  # the main job: 16 tasks, MiniLM (embeddings + 6 layers), probe 256
MIN_RATIO = 5.0
ROUNDS = 5


def features(seed: int = 0) -> np.ndarray:
    """[tasks, layers, rows, width] float32 features with shared and task-specific parts (CKA 0.2-0.9)."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((LAYERS, ROWS, 32))  # what every model represents of the probe rows
    out = np.empty((TASKS, LAYERS, ROWS, WIDTH), dtype=np.float32)
    for t in range(TASKS):
        weight = rng.uniform(0.2, 2.0)  # how much of the shared part task t's model keeps
        mix = rng.standard_normal((LAYERS, 32, WIDTH))
        own = rng.standard_normal((LAYERS, ROWS, WIDTH))
        out[t] = weight * np.einsum("lrk,lkw->lrw", shared, mix) + own
    return out


def _centred_gram(x: np.ndarray) -> np.ndarray:
    """H (X X^T) H for x [n, p]: the centred linear kernel [n, n]."""
    gram = x @ x.T
    return gram - gram.mean(axis=0, keepdims=True) - gram.mean(axis=1, keepdims=True) + gram.mean()


def naive_pairwise_cka(feats: np.ndarray) -> np.ndarray:
    """[layers, T, T] linear CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), Grams built per pair and layer."""
    tasks, layers = feats.shape[:2]
    out = np.ones((layers, tasks, tasks))
    for i in range(tasks):
        for j in range(i + 1, tasks):
            for layer in range(layers):
                k = _centred_gram(feats[i, layer].astype(np.float64))
                l = _centred_gram(feats[j, layer].astype(np.float64))  # noqa: E741 -- the HSIC papers' name
                out[layer, i, j] = out[layer, j, i] = np.vdot(k, l) / np.sqrt(np.vdot(k, k) * np.vdot(l, l))
    return out


@pytest.mark.benchmark(group="cka")
def test_layerwise_cka_of_all_pairs_beats_per_pair_grams(ratio):
    feats = features()
    reps = [list(feats[t]) for t in range(TASKS)]  # as the predictor reads features.npy: reps[t][layer]
    expected = naive_pairwise_cka(feats)
    got = layerwise_cka(reps).per_layer
    diff = float(np.abs(got - expected).max())
    assert diff < 1e-6
    assert 0.1 < expected[:, 0, 1:].min() and expected[:, 0, 1:].max() < 0.95  # neither trivial nor saturated
    ratio.measure(
        f"CKA time: per-pair Grams / harness, all pairs of {TASKS} tasks",
        lambda: naive_pairwise_cka(feats),
        lambda: layerwise_cka(reps),
        rounds=ROUNDS,
        target=MIN_RATIO,
        direction=">=",
        labels=("per-pair Grams", "harness (features and Grams once)"),
        setup={"tasks": TASKS, "layers": LAYERS, "rows": ROWS, "width": WIDTH, "max_abs_diff": f"{diff:.1e}"},
    )
