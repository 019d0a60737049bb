"""Typed results of the scores, and the input checks they share.

Orientation used throughout ``harness.scoring``: ``G[s, i, j]`` is the measured gap of task ``i``
(metric of MTL on {i, j} minus metric of STL on i) when trained with task ``j``, on seed ``s``;
NaN on the diagonal and where unmeasured. A predictor ``P[i, j]`` is read the same way: how much
``j`` should help ``i`` (higher = "should share"). A predictor with the other orientation (TAG's
``Z[i, j]`` is "a step on i changes j's loss") is passed transposed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.errors import AnalysisError, ConfigError

SCORE_VERSION = 1


@dataclass(frozen=True)
class Score:
    """One score of a predictor (or of the measurements themselves), with how it was computed.

    ``ci_low``/``ci_high`` and ``p_value`` are None when not computed (zero resamples asked for,
    or not meaningful for this score). ``corrected`` is only set by ``noise_ceiling``.
    """

    value: float  # the statistic (a Spearman rho for every score here)
    ci_low: float | None  # bootstrap confidence interval, at `confidence`
    ci_high: float | None
    p_value: float | None  # from the null stated in `null`
    n: int  # points the statistic is computed on (ordered task pairs, or (task, group) points)
    method: str  # the statistic, and what is compared with what
    null: str = ""  # how p_value was obtained; "" when there is none
    interval: str = ""  # how the CI was obtained (resampling unit); "" when there is none
    confidence: float = 0.95
    corrected: float | None = None  # noise ceiling only: Spearman-Brown reliability of the full set of seeds

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form."""
        return {"version": SCORE_VERSION, "kind": "score", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        _check_version(data, "score")
        return cls(**{k: v for k, v in data.items() if k not in ("version", "kind")})


@dataclass(frozen=True)
class DetectionScore:
    """How well a predictor flags the pairs with significant negative transfer.

    ``precision`` is None when the predictor flags no pair, ``recall`` None when no pair has
    significant negative transfer, ``f1`` None when either is None (0.0 when both are 0).
    """

    precision: float | None
    recall: float | None
    f1: float | None
    tp: int  # flagged and significantly negative
    fp: int  # flagged, not significantly negative
    fn: int  # not flagged, significantly negative
    tn: int  # neither
    threshold: float  # a pair is flagged when P[i, j] < threshold
    alpha: float  # level of each per-pair test (no multiple-comparison correction)
    n: int  # ordered pairs tested (= tp + fp + fn + tn)
    significant: tuple[tuple[int, int], ...]  # (i, j) with significant negative transfer
    flagged: tuple[tuple[int, int], ...]  # (i, j) the predictor flags
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (pairs as lists)."""
        return {"version": SCORE_VERSION, "kind": "detection", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionScore:
        _check_version(data, "detection")
        fields = {k: v for k, v in data.items() if k not in ("version", "kind")}
        for key in ("significant", "flagged"):
            fields[key] = tuple((int(i), int(j)) for i, j in fields[key])
        return cls(**fields)


def _check_version(data: dict[str, Any], kind: str) -> None:
    if data.get("version") != SCORE_VERSION or data.get("kind") != kind:
        raise AnalysisError(
            f"score record has version {data.get('version')!r}, kind {data.get('kind')!r}; "
            f"this harness reads version {SCORE_VERSION}, kind {kind!r}: recompute the score"
        )


def check_predictor(P: np.ndarray, tasks: Sequence[str] | None = None) -> np.ndarray:
    """P as a float64 [T, T] array with finite off-diagonal entries (the diagonal is ignored)."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] < 2:
        raise AnalysisError(f"predictor matrix must be square [T, T] with T >= 2; got shape {P.shape}")
    if tasks is not None and len(tasks) != P.shape[0]:
        raise AnalysisError(f"predictor matrix is {P.shape[0]}x{P.shape[0]} but {len(tasks)} tasks were named")
    bad = ~np.isfinite(P) & ~np.eye(P.shape[0], dtype=bool)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AnalysisError(
            f"predictor entry {_pair_name(int(i), int(j), tasks)} is not finite; "
            "every off-diagonal entry of a predictor must be a number"
        )
    return P


def check_gaps(G: np.ndarray, T: int, tasks: Sequence[str] | None = None) -> np.ndarray:
    """G as float64 [S, T, T]. A pair is either measured on every seed or on none."""
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 3 or G.shape[1:] != (T, T) or G.shape[0] < 1:
        raise AnalysisError(f"pair gaps must have shape [seeds, {T}, {T}]; got {G.shape}")
    finite = np.isfinite(G)
    partial = finite.any(axis=0) & ~finite.all(axis=0)
    if partial.any():
        i, j = np.argwhere(partial)[0]
        raise AnalysisError(
            f"pair gap {_pair_name(int(i), int(j), tasks)} is measured on some seeds and missing on others; "
            "drop the incomplete seeds or the pair (set it NaN on every seed)"
        )
    return G


def measured_pairs(G: np.ndarray) -> np.ndarray:
    """Boolean [T, T]: off-diagonal pairs measured on every seed."""
    T = G.shape[1]
    return np.isfinite(G).all(axis=0) & ~np.eye(T, dtype=bool)


def check_count(name: str, value: int, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}; got {value!r}")


def check_level(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must lie strictly between 0 and 1; got {value!r}")


def _pair_name(i: int, j: int, tasks: Sequence[str] | None) -> str:
    return f"({tasks[i]!r}, {tasks[j]!r})" if tasks is not None else f"[{i}, {j}]"
