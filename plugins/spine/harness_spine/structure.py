"""The planted relatedness structure of the synthetic corpus, and how to measure it.

Every label is a thresholded Gaussian *liability* (a probit model). Per level there are two
latent causes:

* ``degeneration`` D: the level's wear. ``D = LEVEL_MEAN[level] + sqrt(0.4) * patient +
  sqrt(0.6) * noise``: one patient factor shared by all levels of a report (older spines are
  worse everywhere) and a level mean that makes C5-C6/C6-C7 and L4-L5/L5-S1 the worst levels.
* ``asymmetry`` A: left-versus-right imbalance, half per report and half per level.

With ``c = sqrt(relatedness)`` a pathology with parent P, loading ``w`` and side loading
``s`` has liability ``c * (w * P + s * A) + sqrt(1 - c^2 (w^2 + s^2)) * noise`` and its label
is the number of cut points the liability exceeds. So the latent correlation of two
pathologies loading on the same parent is ``relatedness * w_i * w_j`` (+ side terms): linear
in the knob, zero for every pair at relatedness 0, and each level mean matters only
through D. Parents are D or a pathology computed earlier (cord signal follows canal
stenosis), which makes chains of cause.

Intended groups (``GROUPS``): *degeneration* (canal, disc, foramina, subarticular, cord
signal; strongly related), *weak* (facet arthropathy; small loading), *independent*
(hemangioma; no parent), *anti* (annular fissure: more common in younger, less
degenerated discs; negative loading, so its rank correlation with the degeneration group is
negative).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness_spine.levels import REGION_LEVELS
from harness_spine.schema import region_pathologies, task_name

PATIENT_SHARE = 0.4  # share of a level's degeneration variance explained by the patient
SIDE_SHARE = 0.5  # share of a level's asymmetry explained by the report (scoliosis, handedness)

#: Mean degeneration per level: worse at C5-C6/C6-C7 and L4-L5/L5-S1.
LEVEL_MEAN: dict[str, float] = {
    "C2-C3": -0.9, "C3-C4": -0.4, "C4-C5": 0.0, "C5-C6": 0.7, "C6-C7": 0.5, "C7-T1": -0.9,
    "L1-L2": -0.9, "L2-L3": -0.5, "L3-L4": 0.0, "L4-L5": 0.7, "L5-S1": 0.6,
}  # fmt: skip


@dataclass(frozen=True)
class Liability:
    """How one pathology's label is drawn (see the module docstring)."""

    parent: str | None  # "degeneration", a pathology sampled earlier, or None (independent)
    weight: float  # loading on the parent; negative = anti-related
    side: float  # loading on the asymmetry latent: + left, - right
    cuts: tuple[float, ...]  # increasing thresholds, one fewer than the labels


#: Sampling order matters: a parent comes before its children.
MODEL: dict[str, Liability] = {
    "disc": Liability("degeneration", 0.9, 0.0, (0.0, 0.9, 1.6)),
    "canal_stenosis": Liability("degeneration", 0.9, 0.0, (0.4, 1.1, 1.7)),
    "left_foraminal": Liability("degeneration", 0.85, 0.3, (0.4, 1.1, 1.7)),
    "right_foraminal": Liability("degeneration", 0.85, -0.3, (0.4, 1.1, 1.7)),
    "subarticular_stenosis": Liability("degeneration", 0.85, 0.0, (0.5, 1.2, 1.8)),
    "cord_signal": Liability("canal_stenosis", 0.85, 0.0, (1.8,)),
    "facet_arthropathy": Liability("degeneration", 0.3, 0.0, (0.3, 1.0, 1.7)),
    "annular_fissure": Liability("degeneration", -0.6, 0.0, (1.0,)),
    "hemangioma": Liability(None, 0.0, 0.0, (1.25,)),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "degeneration": (
        "canal_stenosis", "disc", "left_foraminal", "right_foraminal", "subarticular_stenosis", "cord_signal",
    ),
    "weak": ("facet_arthropathy",),
    "independent": ("hemangioma",),
    "anti": ("annular_fissure",),
}  # fmt: skip


@dataclass(frozen=True)
class ReportLatents:
    """Per-report latents shared by every level of the report."""

    patient: float  # degeneration propensity (age), N(0, 1)
    side: float  # report-level asymmetry, N(0, 1)


def sample_report_latents(rng: random.Random) -> ReportLatents:
    return ReportLatents(rng.gauss(0.0, 1.0), rng.gauss(0.0, 1.0))


def sample_level(
    rng: random.Random, region: str, level: str, latents: ReportLatents, relatedness: float
) -> dict[str, str]:
    """Clean labels (pathology -> label name) for one level; consumes ``rng`` deterministically."""
    degeneration = LEVEL_MEAN[level] + math.sqrt(PATIENT_SHARE) * latents.patient
    degeneration += math.sqrt(1 - PATIENT_SHARE) * rng.gauss(0.0, 1.0)
    asymmetry = math.sqrt(SIDE_SHARE) * latents.side + math.sqrt(1 - SIDE_SHARE) * rng.gauss(0.0, 1.0)
    c = math.sqrt(relatedness)
    values: dict[str, float] = {"degeneration": degeneration}
    labels: dict[str, str] = {}
    wanted = {p.name: p for p in region_pathologies(region)}
    for name, spec in MODEL.items():
        own = rng.gauss(0.0, 1.0)  # drawn for every pathology so regions share the stream layout
        if name not in wanted:
            continue
        parent = values[spec.parent] if spec.parent else 0.0
        shared = c * (spec.weight * parent + spec.side * asymmetry)
        values[name] = shared + math.sqrt(max(0.0, 1 - c * c * (spec.weight**2 + spec.side**2))) * own
        labels[name] = wanted[name].labels[sum(values[name] > cut for cut in spec.cuts)]
    return labels


def task_groups(region: str) -> dict[str, list[str]]:
    """The intended groups as task names for one region (pathologies it lacks left out)."""
    present = {p.name for p in region_pathologies(region)}
    return {group: [task_name(region, p) for p in members if p in present] for group, members in GROUPS.items()}


def label_dependence(labels: Sequence[Mapping[str, Mapping[str, str]]], region: str) -> dict[str, Any]:
    """Pairwise dependence of a region's tasks over annotated levels.

    ``labels`` holds one mapping per report: level -> pathology -> label name. For each pair,
    only levels where both labels are present count. Returns ``tasks`` (names), ``nmi``
    (normalised mutual information, arithmetic mean; symmetric, 1 on the diagonal),
    ``spearman`` (rank correlation of the class indices; 0 where a label is constant) and
    ``pairs`` (how many levels each entry is computed on).
    """
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import normalized_mutual_info_score

    paths = region_pathologies(region)
    rows = [levels[lv] for levels in labels for lv in REGION_LEVELS[region] if lv in levels]
    codes = np.array([[p.labels.index(r[p.name]) if p.name in r else -1 for p in paths] for r in rows], dtype=np.int64)
    codes = codes.reshape(len(rows), len(paths))
    n = len(paths)
    nmi, rho, pairs = np.eye(n), np.eye(n), np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        for j in range(i, n):
            both = (codes[:, i] >= 0) & (codes[:, j] >= 0)
            x, y = codes[both, i], codes[both, j]
            pairs[i, j] = pairs[j, i] = len(x)
            if i == j or len(x) < 2:
                continue
            nmi[i, j] = nmi[j, i] = normalized_mutual_info_score(x, y)
            constant = len(np.unique(x)) < 2 or len(np.unique(y)) < 2
            rho[i, j] = rho[j, i] = 0.0 if constant else spearmanr(x, y)[0]
    return {
        "tasks": [task_name(region, p.name) for p in paths],
        "nmi": np.round(nmi, 6).tolist(),
        "spearman": np.round(rho, 6).tolist(),
        "pairs": pairs.tolist(),
    }


def model_description() -> dict[str, Any]:
    """The planted model's parameters, JSON-ready (for ground_truth.json)."""
    return {
        "patient_share": PATIENT_SHARE,
        "side_share": SIDE_SHARE,
        "level_mean": dict(LEVEL_MEAN),
        "liabilities": {
            name: {"parent": s.parent, "weight": s.weight, "side": s.side, "cuts": list(s.cuts)}
            for name, s in MODEL.items()
        },
        "latent_correlation": "relatedness * w_i * w_j (+ relatedness * s_i * s_j * var(A)) for pathologies sharing D",
    }
