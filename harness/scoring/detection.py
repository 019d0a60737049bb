"""Does a predictor flag the pairs with significant negative transfer?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from harness.errors import AnalysisError
from harness.scoring.score import DetectionScore, check_gaps, check_level, check_predictor, measured_pairs


def significant_negative(G: np.ndarray, *, alpha: float = 0.05) -> np.ndarray:
    """Boolean [T, T]: pairs whose two-sided (1 - alpha) t interval of the mean gap over seeds lies below 0.

    One-sample t-test over seeds (``scipy.stats.ttest_1samp``), per pair, without correction
    for the T(T-1) pairs tested (pass alpha / n for Bonferroni). A pair with the same gap on
    every seed has a zero-width interval: significant when that gap is negative. Needs >= 2 seeds.
    """
    check_level("alpha", alpha)
    if G.shape[0] < 2:
        raise AnalysisError(f"testing a gap against 0 needs at least 2 seeds; got {G.shape[0]}: train more seeds")
    mask = measured_pairs(G)
    x = G[:, mask]  # [S, n_pairs]
    high = x[0].copy()  # the zero-width interval of a pair without spread
    spread = np.ptp(x, axis=0) > 0
    if spread.any():
        result = stats.ttest_1samp(x[:, spread], 0.0, axis=0)
        high[spread] = result.confidence_interval(1 - alpha).high
    out = np.zeros(mask.shape, dtype=bool)
    out[mask] = high < 0
    return out


def negative_transfer_detection(
    P: np.ndarray,
    G: np.ndarray,
    *,
    alpha: float = 0.05,
    threshold: float | None = None,
    tasks: Sequence[str] | None = None,
) -> DetectionScore:
    """Precision, recall and F1 of "P[i, j] < threshold" as a detector of significant negative transfer.

    Truth: ``significant_negative(G, alpha=alpha)`` over the ordered pairs measured on every
    seed. Flag: ``P[i, j] < threshold``; default threshold the median of P over those pairs
    (about half the pairs flagged: a fixed operating point, not tuned on the gaps).
    Conventions for undefined values: precision None when nothing is flagged, recall None when
    no pair is significantly negative, F1 None when either is None, F1 0.0 when both are 0.
    """
    P = check_predictor(P, tasks)
    G = check_gaps(G, P.shape[0], tasks)
    mask = measured_pairs(G)
    if not mask.any():
        raise AnalysisError("no off-diagonal pair gap is measured on every seed; nothing to detect")
    truth = significant_negative(G, alpha=alpha)
    cut = float(np.median(P[mask])) if threshold is None else float(threshold)
    flag = mask & (P < cut)
    tp = int((flag & truth).sum())
    fp = int((flag & ~truth).sum())
    fn = int((~flag & truth & mask).sum())
    tn = int((~flag & ~truth & mask).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return DetectionScore(
        precision=precision,
        recall=recall,
        f1=f1,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        threshold=cut,
        alpha=alpha,
        n=int(mask.sum()),
        significant=tuple((int(i), int(j)) for i, j in np.argwhere(truth)),
        flagged=tuple((int(i), int(j)) for i, j in np.argwhere(flag)),
        method=f"t-test over seeds, {1 - alpha:.0%} CI below 0 = negative transfer; flag P[i, j] < "
        + ("median of P" if threshold is None else "given threshold"),
    )
