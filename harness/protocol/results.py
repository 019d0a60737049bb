"""Typed results with one versioned JSON form: every reader (report, show, manifest) uses these.

- ``JobResult``: one finished job (``jobs/<key>/result.json``).
- ``GapEstimate``: the MTL - STL gap of one task in one trained group, over seeds.
- ``PredictorMatrix``: one predictor's task x task matrix (``P[i, j]`` = predicted benefit to
  task i from sharing a model with task j; higher = should share), with its cost.
- ``PredictorScore``: how well one predictor predicted the measured gaps.
- ``GrouperResult``: the partition a grouper chose, its mean gap, regret and cost.

JSON: NaN is written as null; ``from_json`` refuses another version with a ``RunError`` that
says what to do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import RunError

JOB_RESULT_VERSION = 2
RESULTS_VERSION = 2


def nan_to_none(value: Any) -> Any:
    """Nested lists of floats with NaN/inf as None (strict JSON)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating):
        return nan_to_none(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def none_to_nan(value: Any) -> np.ndarray:
    """The inverse of ``nan_to_none`` for a numeric array."""
    return np.array(_nan(value), dtype=np.float64)


def _nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan(v) for v in value]
    return math.nan if value is None else value


def _check_version(data: Any, version: int, what: str, path: Path | str) -> None:
    found = data.get("version") if isinstance(data, dict) else None
    if found != version:
        raise RunError(
            f"{path}: {what} of version {found!r}; this harness reads version {version}: "
            "rerun with this version (or use the harness version that wrote it)"
        )


@dataclass(frozen=True)
class JobResult:
    """One finished job: its best epoch's metrics per task, history, and measurements."""

    kind: str
    tasks: list[str]
    seed: int
    best_epoch: int  # 1-based; 0 for an "init" job (no training)
    epochs_trained: int
    splits: dict[str, str]  # task -> "test" or "dev": where its reported metrics come from
    metrics: dict[str, dict[str, float | None]]  # task -> metric -> value on the reported split
    dev: dict[str, dict[str, float | None]]  # task -> metric -> value on dev (selection)
    history: list[dict[str, Any]]
    data_fingerprints: dict[str, str]
    seconds: float = 0.0  # wall-clock seconds of this job (training, evaluation, measurements)
    train_seconds: float = 0.0  # of which training epochs (observers included)
    measure_seconds: dict[str, float] = field(default_factory=dict)  # "features", "observers", "init"
    observations: dict[str, Any] = field(default_factory=dict)  # observer / init measurements (JSON)
    features: str | None = None  # file (in the job folder) of the probe-set layer features
    thresholds: dict[str, Any] | None = None  # multi-label: {"mode": fixed|tuned, "values": {task: [..]}}
    train_examples: int = 0  # training rows seen in train_seconds (all processes together)
    processes: int = 1  # processes that ran the job
    device: str = ""  # the main process's device, as torch names it ("cpu", "cuda:0")
    peak_memory_mb: float | None = None  # the main process's peak memory in MiB (see ``memory``)
    memory: str = ""  # what peak_memory_mb measures: "cuda_max_allocated" or "process_max_rss"
    host: str = ""  # the machine and process that ran the job (the main process under a distributed launch)
    pid: int = 0
    version: int = JOB_RESULT_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.thresholds is None:
            del data["thresholds"]
        return nan_to_none(data)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "job result") -> JobResult:
        _check_version(data, JOB_RESULT_VERSION, "job result", path)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def read(cls, path: Path) -> JobResult:
        from harness.protocol.rundir import read_json

        fix = f"delete {path.parent} to train that job again"
        return cls.from_json(read_json(path, ("version", "kind", "tasks", "seed", "metrics"), fix), path)


@dataclass(frozen=True)
class GapEstimate:
    """metric(MTL on ``group``) - metric(STL on ``task``) on the task's primary metric, per seed.

    Paired by seed (the MTL and STL models of one seed share their data order seed); the mean,
    a two-sided Student-t 95 % interval over seeds (None with one seed) and the per-seed values.
    Sign: positive = sharing helped, whatever the metric's direction (the difference is negated
    for a lower-is-better metric).
    """

    task: str
    group: list[str]
    metric: str
    mean: float | None
    ci95: list[float] | None
    values: list[float]
    seeds: list[int]

    @property
    def n(self) -> int:
        return len(self.values)

    def to_json(self) -> dict[str, Any]:
        return {**nan_to_none(asdict(self)), "n": self.n}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GapEstimate:
        return cls(**{k: v for k, v in data.items() if k != "n"})


@dataclass(frozen=True)
class PredictorMatrix:
    """One predictor's task x task matrix, or why it is unavailable.

    ``matrix[i, j]`` (float64 [T, T], task order ``tasks``): the predicted benefit to task i of
    sharing a model with task j; higher = should share. ``symmetric`` is declared by the
    predictor. ``seconds``: what it cost (its artifacts' measurement plus its own computation).
    ``details``: predictor-specific JSON (per-layer matrices, ceiling, floor, ...).
    """

    name: str
    tasks: list[str]
    matrix: np.ndarray | None
    symmetric: bool
    seconds: float
    needs: list[str]
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why it could not be computed (then matrix is None)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["matrix"] = None if self.matrix is None else nan_to_none(self.matrix)
        return nan_to_none(data)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictorMatrix:
        values = dict(data)
        values["matrix"] = None if data["matrix"] is None else none_to_nan(data["matrix"])
        return cls(**values)


@dataclass(frozen=True)
class PredictorScore:
    """One predictor against the measured gaps (``harness.scoring``); None where not measurable.

    ``pairs``: Spearman rho against the measured pair-gap matrix (``--pairs``); ``groups``:
    rho of each task's mean predicted affinity to its group-mates against its gap in every
    trained group; ``fraction_of_ceiling``: ``pairs`` over the noise ceiling's reliability;
    ``negative_transfer``: precision/recall/F1 at flagging significantly negative pair gaps;
    ``cost_share``: the predictor's seconds over the full pairwise sweep's training seconds.
    """

    predictor: str
    pairs: dict[str, Any] | None = None  # Score.to_dict()
    groups: dict[str, Any] | None = None  # Score.to_dict()
    fraction_of_ceiling: float | None = None
    negative_transfer: dict[str, Any] | None = None  # DetectionScore.to_dict()
    cost_share: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # why a score is missing

    def to_json(self) -> dict[str, Any]:
        return nan_to_none(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PredictorScore:
        return cls(**data)


@dataclass(frozen=True)
class GrouperResult:
    """A grouper's partition, the mean gap over tasks it achieved, and its regret."""

    grouper: str
    partition: list[list[str]] | None
    mean_gap: float | None  # mean over all selected tasks (a task alone has gap 0)
    regret: float | None  # best measured partition's mean gap - this one's (>= 0)
    rank: int | None  # 1 = best among the measured partitions
    cost_seconds: float  # training seconds spent to choose it (its predictor's cost; pairs for pair gaps)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return nan_to_none(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GrouperResult:
        return cls(**data)


@dataclass(frozen=True)
class RunResults:
    """Everything one ``harness run`` measured (``results.json``)."""

    plan: dict[str, Any]
    training: dict[str, Any]  # loss weighting, epochs, patience
    tasks: dict[str, dict[str, Any]]  # per task: STL metrics, and MTL + gap in the "all" group
    groups: list[dict[str, Any]]  # per trained group: {"tasks", "sources", "gaps": {task: GapEstimate json}}
    jobs: dict[str, dict[str, Any]]
    rows: dict[str, dict[str, int]]
    pair_gaps: dict[str, Any] | None = None  # {"tasks", "seeds", "values": [S][T][T] (i's gap with j)}
    predictors: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> PredictorMatrix json
    scores: dict[str, Any] = field(default_factory=dict)  # "noise_ceiling", "predictors": {name: PredictorScore}
    groupers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> GrouperResult json
    gap_by_size: list[dict[str, Any]] = field(default_factory=list)  # mean gap per group size
    version: int = RESULTS_VERSION

    def to_json(self) -> dict[str, Any]:
        return nan_to_none(asdict(self))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: Any, path: Path | str = "results.json") -> RunResults:
        _check_version(data, RESULTS_VERSION, "results", path)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def predictor_matrices(self) -> dict[str, PredictorMatrix]:
        return {name: PredictorMatrix.from_json(p) for name, p in self.predictors.items()}

    def grouper_results(self) -> dict[str, GrouperResult]:
        return {name: GrouperResult.from_json(g) for name, g in self.groupers.items()}

    def predictor_scores(self) -> dict[str, PredictorScore]:
        return {name: PredictorScore.from_json(s) for name, s in self.scores.get("predictors", {}).items()}

    def scalars(self) -> dict[str, float]:
        """The run's values as flat named scalars (for experiment trackers); missing and non-finite left out.

        - ``predictor/<name>/<task i>~<task j>``: each predictor's matrix entry ``P[i, j]``;
        - ``score/<name>/pairs_rho``, ``.../groups_rho`` (Spearman rho against the measured gaps),
          ``.../fraction_of_ceiling``, ``.../negative_transfer_f1``, ``.../cost_share``, ``.../seconds``;
          ``score/noise_ceiling``;
        - ``gap/<task>``: the MTL - STL gap in the all-task group (mean over seeds);
          ``stl/<task>/<metric>``, ``mtl/<task>/<metric>``: the metrics behind it (means);
        - ``group_gap/<a+b+...>/<task>``: the gap of every task in every trained group;
        - ``grouper/<name>/mean_gap``, ``grouper/<name>/regret``.
        """
        out: dict[str, Any] = {}
        for name, p in self.predictor_matrices().items():
            if p.matrix is not None:
                for (i, a), (j, b) in itertools.product(enumerate(p.tasks), repeat=2):
                    out[f"predictor/{name}/{a}~{b}"] = p.matrix[i, j]
        for name, score in self.predictor_scores().items():
            out[f"score/{name}/pairs_rho"] = (score.pairs or {}).get("value")
            out[f"score/{name}/groups_rho"] = (score.groups or {}).get("value")
            out[f"score/{name}/fraction_of_ceiling"] = score.fraction_of_ceiling
            out[f"score/{name}/negative_transfer_f1"] = (score.negative_transfer or {}).get("f1")
            out[f"score/{name}/cost_share"] = score.cost_share
            out[f"score/{name}/seconds"] = score.seconds
        out["score/noise_ceiling"] = (self.scores.get("noise_ceiling") or {}).get("value")
        for task, entry in self.tasks.items():
            out[f"gap/{task}"] = (entry.get("gap") or {}).get("mean")
            for side in ("stl", "mtl"):
                for metric, value in (entry.get(side) or {}).items():
                    out[f"{side}/{task}/{metric}"] = value["mean"]
        for group in self.groups:
            for task, gap in group["gaps"].items():
                out[f"group_gap/{'+'.join(group['tasks'])}/{task}"] = gap["mean"]
        for name, grouper in self.grouper_results().items():
            out[f"grouper/{name}/mean_gap"], out[f"grouper/{name}/regret"] = grouper.mean_gap, grouper.regret
        return {k: float(v) for k, v in out.items() if _finite(v)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def mean_or_none(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None
