"""Multi-label decision thresholds: fixed at probability 0.5, or tuned per label on dev.

A multi-label head predicts label j when sigmoid(logit_j) > t_j. With ``multilabel_threshold
= "fixed"`` every t_j = 0.5 (logit > 0). With ``"tuned"``, t_j maximises label j's F1 on the
labelled dev rows over a grid, the usual per-class threshold calibration for multi-label
classifiers (e.g. Lipton et al. 2014, "Optimal thresholding of classifiers to maximize F1");
test predictions use the dev thresholds, and dev metrics are optimistic (reported as such).
"""

from __future__ import annotations

import numpy as np

from harness.api import MISSING_LABEL

#: Candidate thresholds: 0.05, 0.10, ..., 0.95.
GRID = np.round(np.arange(1, 20) / 20, 2)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def tune_thresholds(probs: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on the labelled rows; [labels] float64.

    ``probs`` and ``refs`` are [rows, labels]; rows holding ``MISSING_LABEL`` are ignored. Ties
    go to the threshold closest to 0.5; a label never positive on dev keeps 0.5.
    """
    keep = (refs != MISSING_LABEL).all(axis=1)
    probs, refs = probs[keep], refs[keep].astype(bool)
    out = np.full(probs.shape[1], 0.5)
    order = np.argsort(np.abs(GRID - 0.5), kind="stable")  # ties: nearest to 0.5 first
    for j in range(probs.shape[1]):
        if not refs[:, j].any():
            continue
        predicted = probs[:, j][None, :] > GRID[order][:, None]  # [grid, rows]
        tp = (predicted & refs[:, j]).sum(axis=1)
        f1 = 2 * tp / (predicted.sum(axis=1) + refs[:, j].sum())
        out[j] = GRID[order][int(np.argmax(f1))]
    return out
