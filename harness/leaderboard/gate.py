"""The regression gate: a baseline written on purpose, and a run checked against it.

Every (task, group, metric) value and every predictor score (Spearman rho against the pair
gaps, and against the group gaps) of the baseline is looked up in the run and judged:

- the change ``d`` is signed by the metric's registered direction: positive = better;
- its standard error comes from the seed spread the baseline recorded:
  ``se = s * sqrt(1 / n_b + 1 / n_r)`` with ``s`` the larger of the baseline's and the run's
  sample standard deviations over seeds (the larger one: with 2-3 seeds a sample deviation is
  often far below the true one, and an underestimate would flag noise as a regression). For a
  predictor score, ``s / sqrt(n)`` is read off each bootstrap 95 % interval,
  ``(high - low) / (2 * 1.96)``, and ``se = sqrt(2) * max`` of the two;
- the tolerance is ``floor + q * se``. ``q`` is the Student-t quantile on ``n_b + n_r - 2``
  degrees of freedom (``n_b - 1`` when the run has one seed; the normal quantile for scores) at
  ``1 - alpha / (2 m)``: Bonferroni over the ``m`` entries of the baseline, so that a rerun of
  unchanged code flags a false regression anywhere with probability at most ``alpha`` (0.05).
  ``floor`` is the stated smallest change that matters;
- verdicts: ``regressed`` when ``d < -tolerance``, ``improved`` when ``d > tolerance``; else
  ``inconclusive`` when the tolerance exceeds ``detect`` (the seed noise is larger than the change
  the gate is meant to catch), else ``pass``. With no spread (one seed) a change within
  ``floor`` passes and a larger one is inconclusive.
- ``incomparable``: the task's version, data fingerprint, reported split or the metric's
  direction differ from the baseline's, so the numbers measure different things; ``missing``:
  the run lacks an STL or all-task value the baseline has. Both fail the gate, as does
  ``regressed``. A group trained only in the baseline (another grouper choice, no ``--pairs``)
  is ``not run``, which does not.

The whole run is refused (``LeaderboardError``) when its model weights or training config differ
from the baseline's: the gate compares like with like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.errors import LeaderboardError
from harness.leaderboard.records import SCHEMA_VERSION, ResultRow, RunRecord, ScoreRecord

Head = tuple[str, str, str, str, float | None, float | None]  # what, name, group, metric, baseline, run
Verdict = Literal["pass", "improved", "regressed", "inconclusive", "incomparable", "missing", "not run"]
FAILING = ("regressed", "incomparable", "missing")
Z95 = 1.959963984540054


class Tolerance(BaseModel):
    """The gate's stated limits, in the units of what is checked (metric values; Spearman rho)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    floor: float = Field(default=0.01, ge=0)  # a metric change smaller than this never fails the gate
    detect: float = Field(default=0.1, gt=0)  # the metric change the gate must be able to detect
    score_floor: float = Field(default=0.05, ge=0)  # the same for predictor scores (rho)
    score_detect: float = Field(default=0.5, gt=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)  # family-wise chance of a false "regressed" on unchanged code

    @model_validator(mode="after")
    def _floors_below_detect(self) -> Tolerance:
        for floor, detect in (("floor", "detect"), ("score_floor", "score_detect")):
            if getattr(self, floor) >= getattr(self, detect):
                raise ValueError(
                    f"{floor} ({getattr(self, floor):g}) must be below {detect} ({getattr(self, detect):g}): "
                    "otherwise no change could ever fail the gate"
                )
        return self


class Baseline(BaseModel):
    """A run's record kept as the reference of ``harness leaderboard check``, with its tolerances."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["harness.leaderboard.baseline"] = "harness.leaderboard.baseline"
    created: datetime
    note: str = ""
    tolerance: Tolerance = Tolerance()
    record: RunRecord


@dataclass(frozen=True)
class Check:
    """One judged entry. ``change`` is signed so that positive = better."""

    what: str  # "metric" or "score"
    name: str  # task (metric) or predictor (score)
    group: str  # "+"-joined sorted group; "pairs" or "groups" for a score
    metric: str  # metric name, or "rho"
    baseline: float | None
    run: float | None
    change: float | None
    tolerance: float | None
    verdict: Verdict
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING


def make_baseline(record: RunRecord, tolerance: Tolerance | None = None, note: str = "") -> Baseline:
    """A baseline of ``record``; ``LeaderboardError`` when it has one seed (no spread: nothing could fail)."""
    if len(record.seeds) < 2:
        raise LeaderboardError(
            f"run {record.run_id} has one seed: a baseline needs the seed spread to set its tolerances "
            "(with one seed no change could be judged); rerun with --seeds 2 or more"
        )
    return Baseline(created=datetime.now(UTC).replace(microsecond=0), note=note, tolerance=tolerance or Tolerance(),
                    record=record)  # fmt: skip


def read_baseline(path: Path) -> Baseline:
    """The baseline file at ``path``; ``LeaderboardError`` naming it and what is wrong otherwise."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise LeaderboardError(f"--baseline {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise LeaderboardError(f"--baseline {path}: not valid JSON ({exc}); restore it from git") from None
    if isinstance(data, dict) and "provenance" in data:
        raise LeaderboardError(
            f"--baseline {path}: a leaderboard record, not a baseline; make one with "
            f"`harness leaderboard baseline --from {path} --out FILE`"
        )
    if not isinstance(data, dict) or data.get("kind") != "harness.leaderboard.baseline":
        raise LeaderboardError(
            f"--baseline {path}: not a baseline file; write one with `harness leaderboard baseline --from RUN_DIR`"
        )
    try:
        return Baseline.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LeaderboardError(f"--baseline {path}: {where}: {first['msg']}; restore it from git") from None


def check(baseline: Baseline, run: RunRecord) -> list[Check]:
    """Every baseline entry judged against ``run`` (see the module docstring for the rules).

    Raises ``LeaderboardError`` when the run's model weights or training config differ.
    """
    base = baseline.record
    _refuse_unlike(base, run)
    tol = baseline.tolerance
    entries = len(base.results) + sum((p.pairs is not None) + (p.groups is not None) for p in base.predictors)
    level = 1 - tol.alpha / (2 * max(entries, 1))  # Bonferroni over the baseline's entries
    unlike = _task_differences(base, run)
    found = {_row_key(r): r for r in run.results}
    out: list[Check] = []
    for row in base.results:
        other = found.get(_row_key(row))
        head: Head = ("metric", row.task, row.group_key, row.metric, row.mean, other.mean if other else None)
        if row.task in unlike:
            out.append(Check(*head, None, None, "incomparable", unlike[row.task]))
        elif other is None:
            required = row.kind == "stl" or "all-task run" in row.sources
            why = "the run has no such value" if required else "this group was not trained in the run"
            out.append(Check(*head, None, None, "missing" if required else "not run", why))
        elif other.higher_is_better != row.higher_is_better:
            out.append(Check(*head, None, None, "incomparable", f"metric {row.metric!r} changed direction"))
        else:
            out.append(_judge_row(row, other, tol, level))
    scores_unlike = _scores_unlike(base, run, unlike)
    for predictor in base.predictors:
        theirs = run.predictor(predictor.name)
        for kind in ("pairs", "groups"):
            mine: ScoreRecord | None = getattr(predictor, kind)
            if mine is None:
                continue
            score = getattr(theirs, kind) if theirs is not None else None
            head = ("score", predictor.name, kind, "rho", mine.value, score.value if score else None)
            if scores_unlike:
                out.append(Check(*head, None, None, "incomparable", scores_unlike))
            elif score is None:
                out.append(Check(*head, None, None, "missing", "the run has no such score"))
            else:
                out.append(_judge_score(mine, score, tol, head, level))
    return out


def _row_key(row: ResultRow) -> tuple[str, str, str, str]:
    return (row.task, row.group_key, row.kind, row.metric)


def _refuse_unlike(base: RunRecord, run: RunRecord) -> None:
    if not {t.name for t in base.tasks} & {t.name for t in run.tasks}:
        raise LeaderboardError(
            f"the run ({', '.join(t.name for t in run.tasks)}) has none of the baseline's tasks "
            f"({', '.join(t.name for t in base.tasks)}): check it against its own baseline"
        )
    if base.model.weights_sha256 != run.model.weights_sha256 or base.model.name != run.model.name:
        raise LeaderboardError(
            f"the run's model ({run.model.name}, weights {str(run.model.weights_sha256)[:12]}) is not the "
            f"baseline's ({base.model.name}, weights {str(base.model.weights_sha256)[:12]}): the gate compares "
            "like with like; write a new baseline on purpose for another model"
        )
    if base.provenance.config_hash != run.provenance.config_hash:
        from harness.core.config import PROTOCOL_KEYS

        a, b = base.provenance.config, run.provenance.config
        changed = sorted(k for k in set(a) | set(b) if k not in PROTOCOL_KEYS and a.get(k) != b.get(k))
        raise LeaderboardError(
            f"the run's training config differs from the baseline's ({', '.join(changed) or 'config hash'}): "
            "the gate compares "
            "like with like; rerun with the baseline's settings, or write a new baseline on purpose"
        )


def _scores_unlike(base: RunRecord, run: RunRecord, unlike: dict[str, str]) -> str:
    """Why the predictor scores cannot be compared ("" when they can): they are over one task set."""
    ours, theirs = [t.name for t in base.tasks], [t.name for t in run.tasks]
    if sorted(ours) != sorted(theirs):
        return f"scores over another task set ({len(theirs)} task(s), baseline {len(ours)})"
    if unlike:
        task, why = next(iter(unlike.items()))
        return f"task {task}: {why}"
    return ""


def _task_differences(base: RunRecord, run: RunRecord) -> dict[str, str]:
    """Task -> why its results cannot be compared with the baseline's (absent when they can)."""
    out = {}
    theirs = {t.name: t for t in run.tasks}
    for task in base.tasks:
        other = theirs.get(task.name)
        if other is None:
            continue  # its rows are "missing"
        for attr, label in (("version", "task version"), ("data_fingerprint", "data fingerprint"), ("split", "split")):
            a, b = getattr(task, attr), getattr(other, attr)
            if a != b:
                out[task.name] = f"{label} differs: baseline {a}, run {b}"
                break
    return out


def _judge_row(row: ResultRow, other: ResultRow, tol: Tolerance, level: float) -> Check:
    from scipy import stats

    head: Head = ("metric", row.task, row.group_key, row.metric, row.mean, other.mean)
    if row.mean is None or other.mean is None:
        return Check(*head, None, None, "missing", "no finite value in the baseline or the run")
    sign = 1.0 if row.higher_is_better else -1.0
    change = sign * (other.mean - row.mean)
    n_b, n_r = _count(row), _count(other)
    if row.std is None:
        return _no_spread(head, change, tol.floor)
    spread = max(row.std, other.std if other.std is not None else 0.0)
    se = spread * math.sqrt(1 / n_b + 1 / n_r)
    df = n_b + n_r - 2 if other.std is not None else n_b - 1
    return _verdict(head, change, tol.floor + float(stats.t.ppf(level, df)) * se, tol.detect)


def _judge_score(mine: ScoreRecord, other: ScoreRecord, tol: Tolerance, head: Head, level: float) -> Check:
    from scipy import stats

    change = other.value - mine.value
    if mine.ci95 is None:
        return _no_spread(head, change, tol.score_floor)
    spread = max((ci.high - ci.low) / (2 * Z95) for ci in (mine.ci95, other.ci95) if ci is not None)
    se = math.sqrt(2) * spread
    return _verdict(head, change, tol.score_floor + float(stats.norm.ppf(level)) * se, tol.score_detect)


def _verdict(head: Head, change: float, tolerance: float, detect: float) -> Check:
    if change < -tolerance:
        return Check(*head, change, tolerance, "regressed", "worse by more than the tolerance")
    if change > tolerance:
        return Check(*head, change, tolerance, "improved", "better by more than the tolerance")
    if tolerance > detect:
        why = f"the seed noise (tolerance {tolerance:.3g}) exceeds the change to detect ({detect:g})"
        return Check(*head, change, tolerance, "inconclusive", why)
    return Check(*head, change, tolerance, "pass", "")


def _no_spread(head: Head, change: float, floor: float) -> Check:
    if abs(change) <= floor:
        return Check(*head, change, floor, "pass", "within the floor (no seed spread recorded)")
    return Check(*head, change, floor, "inconclusive",
                 "one seed: no spread to judge this change; record the baseline with 2 seeds or more")  # fmt: skip


def _count(row: ResultRow) -> int:
    return sum(v is not None for v in row.values)
