"""The ``planted`` predictor: the generator's own relatedness between two spine tasks.

For two pathologies of one region, the Spearman rank correlation of their clean labels over
``LEVELS`` levels drawn from the planted model (``structure.sample_level``, relatedness 0.8 as
in the corpus presets, seed 0): what the synthetic corpus says *should* share. NaN for tasks of
different regions (no shared latent) and for tasks that are not spine tasks. Scored against the
measured pair gaps like any predictor, its rho says whether the planted structure moves the gaps:
the corpus is a calibration set only if it does.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from typing import Any

from harness_spine.levels import REGION_LEVELS, REGIONS
from harness_spine.schema import region_pathologies, task_name
from harness_spine.structure import label_dependence, sample_level, sample_report_latents

LEVELS = 6000  # per region: the correlations are exact to about +-0.02
RELATEDNESS = 0.8


@functools.cache
def planted_correlations(region: str, relatedness: float = RELATEDNESS, reports: int = LEVELS) -> dict[str, Any]:
    """``label_dependence`` of ``reports`` simulated reports' clean labels (every level annotated)."""
    rng = random.Random(0)
    labels = []
    for _ in range(max(1, reports // len(REGION_LEVELS[region]))):
        latents = sample_report_latents(rng)
        labels.append({lv: sample_level(rng, region, lv, latents, relatedness) for lv in REGION_LEVELS[region]})
    return label_dependence(labels, region)


def planted(tasks: Sequence[Any], artifacts: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    index: dict[str, tuple[str, int]] = {}
    tables = {}
    for region in REGIONS:
        tables[region] = np.array(planted_correlations(region)["spearman"])
        for k, p in enumerate(region_pathologies(region)):
            index[task_name(region, p.name)] = (region, k)
    names = [getattr(t, "name", t) for t in tasks]
    out = np.full((len(names), len(names)), np.nan)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a in index and b in index and index[a][0] == index[b][0]:
                out[i, j] = tables[index[a][0]][index[a][1], index[b][1]]
    return {"matrix": out, "details": {"relatedness": RELATEDNESS, "levels_simulated": LEVELS}}
