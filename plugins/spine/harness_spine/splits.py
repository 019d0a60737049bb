"""Splits by report: every level of a report lands in one split.

Shared by the loader (user data without a ``split`` field, corpus 1) and the generator
(corpus 2 assigns splits itself, because its label scarcity applies to train only).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from harness_spine.reports import Report
from harness_spine.schema import region_pathologies

SPLIT_FRACTIONS = {"train": 0.7, "dev": 0.15, "test": 0.15}


def assign_splits(reports: Sequence[Report], region: str, seed: int) -> dict[str, str]:
    """report_id -> split. Given splits are kept; otherwise reports are ordered by stratum
    (worst canal stenosis, unannotated first) and a seeded random key, and dealt out so that
    every prefix is as close to 70/15/15 as possible, which stratifies the split."""
    if reports and all(r.split is not None for r in reports):
        return {r.report_id: str(r.split) for r in reports}
    rng = random.Random(f"harness-spine:split:{seed}:{region}")
    keyed = [(_stratum(r), rng.random(), r.report_id) for r in reports]
    counts = dict.fromkeys(SPLIT_FRACTIONS, 0)
    out = {}
    for k, (_, _, report_id) in enumerate(sorted(keyed)):
        split = max(SPLIT_FRACTIONS, key=lambda s: (k + 1) * SPLIT_FRACTIONS[s] - counts[s])
        counts[split] += 1
        out[report_id] = split
    return out


def _stratum(report: Report) -> int:
    canal = region_pathologies(report.region)[0]
    return max((canal.labels.index(lv[canal.name]) for lv in report.labels.values() if canal.name in lv), default=-1)
