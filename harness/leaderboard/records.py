"""Leaderboard records: one validated, versioned JSON document per run (pydantic models).

A ``RunRecord`` holds what one ``harness run`` measured, with its provenance:

- ``provenance``: run id, time, harness version and git revision, plugins and their versions,
  libraries, profile, config and its hash;
- ``model``: the encoder's name and a sha256 over its weight (and tokenizer) files;
- ``tasks``: per task its version, data fingerprint, reported split and primary metric with the
  metric's registered direction;
- ``results``: one ``ResultRow`` per (task, group, metric): the value per seed, mean, seed
  standard deviation, Student-t 95 % interval, the MTL - STL gap (primary metric) and the cost of
  the group's jobs (seconds, examples/s, peak memory, processes, device);
- ``predictors``: each predictor's task x task matrix (per layer where it has layers) and its
  scores against the measured gaps (Spearman rho with bootstrap CI, fraction of the noise
  ceiling, negative-transfer F1, cost share); ``groupers``: partition, mean gap, regret, cost.

The JSON Schema of a record (``RunRecord.model_json_schema()``) is written with
``harness leaderboard schema``. Validation is pydantic's (v2): unknown keys, wrong types,
non-finite numbers and inconsistent shapes are refused, and ``read_record`` names the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator

SCHEMA_VERSION: Literal[1] = 1
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # a file name: no '/', no leading '.', no spaces

Matrix = list[list[float | None]]  # [T][T], None where not measured


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Cost(_Model):
    """What a set of jobs cost. Seconds are wall-clock; examples/s = training rows / training seconds."""

    jobs: NonNegativeInt
    seconds: NonNegativeFloat  # every job's wall-clock (training, evaluation, measurements)
    train_seconds: NonNegativeFloat  # training epochs only
    examples_per_second: NonNegativeFloat | None  # training rows per training second (all processes)
    peak_memory_mb: NonNegativeFloat | None  # max over the jobs; see ``memory``
    memory: str = ""  # "cuda_max_allocated" | "process_max_rss" (a process high-water mark)
    processes: PositiveInt = 1
    device: str = ""  # "cpu", "cuda:0", ...


class Interval(_Model):
    low: float
    high: float


class Gap(_Model):
    """MTL - STL on the task's primary metric, paired by seed; positive = sharing helped (sign-corrected)."""

    mean: float | None
    ci95: Interval | None
    values: list[float]
    seeds: list[int]


class ResultRow(_Model):
    """One task's metric in one trained group (``kind`` stl: the task alone), over seeds."""

    task: str
    group: list[str] = Field(min_length=1)  # the tasks trained together, in the run's order
    kind: Literal["stl", "mtl"]
    metric: str
    primary: bool
    higher_is_better: bool  # the metric's registered direction
    split: Literal["test", "dev"]
    seeds: list[int]
    values: list[float | None]  # per seed, same order as ``seeds``
    mean: float | None
    std: float | None  # sample standard deviation over seeds (ddof 1); None with fewer than 2 values
    ci95: Interval | None  # Student-t 95 % interval of the mean over seeds
    gap: Gap | None = None  # mtl rows of the primary metric
    sources: list[str] = Field(default_factory=list)  # why the group was trained: all, pairs, a grouper
    cost: Cost

    @model_validator(mode="after")
    def _check(self) -> ResultRow:
        if len(self.values) != len(self.seeds):
            raise ValueError(f"{len(self.values)} values for {len(self.seeds)} seeds")
        if self.task not in self.group:
            raise ValueError(f"task {self.task!r} is not in its group {self.group}")
        if self.kind == "stl" and self.group != [self.task]:
            raise ValueError(f"an stl row's group is its task alone, got {self.group}")
        return self

    @property
    def group_key(self) -> str:
        """The group as one order-free string: task names sorted, joined by '+'."""
        return "+".join(sorted(self.group))


class TaskRecord(_Model):
    name: str
    version: str
    data_fingerprint: str  # sha256 (16 hex) over the fingerprints of every split the task's STL jobs used
    split_fingerprints: dict[str, str]  # "<stream>/<split>" -> content fingerprint (sha256 of its rows)
    split: Literal["test", "dev"]  # where its reported metrics come from
    primary_metric: str
    higher_is_better: bool
    metrics: dict[str, bool]  # every metric -> higher_is_better, as registered


class ScoreRecord(_Model):
    """A Spearman rho (or reliability) with its bootstrap interval and permutation p-value."""

    value: float
    ci95: Interval | None
    p_value: float | None
    n: NonNegativeInt
    method: str = ""


class PredictorRecord(_Model):
    name: str
    description: str = ""
    tasks: list[str]
    matrix: Matrix | None  # P[i][j]: predicted benefit to task i of sharing with task j; None: see error
    symmetric: bool
    seconds: NonNegativeFloat
    needs: list[str] = Field(default_factory=list)
    error: str | None = None
    layers: list[str] = Field(default_factory=list)  # layer names of ``per_layer``
    per_layer: list[Matrix] | None = None  # [L][T][T]: CKA or gradient cosine per layer
    pairs: ScoreRecord | None = None  # rho against the measured pair gaps
    groups: ScoreRecord | None = None  # rho against the gaps in every trained group
    fraction_of_ceiling: float | None = None
    negative_transfer_f1: float | None = None
    cost_share: float | None = None
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> PredictorRecord:
        T = len(self.tasks)
        for m in ([self.matrix] if self.matrix is not None else []) + list(self.per_layer or []):
            if len(m) != T or any(len(row) != T for row in m):
                raise ValueError(f"predictor {self.name!r}: a matrix is not {T} x {T} (tasks {self.tasks})")
        if self.per_layer is not None and len(self.per_layer) != len(self.layers):
            raise ValueError(f"predictor {self.name!r}: {len(self.per_layer)} layer matrices, {len(self.layers)} names")
        return self


class GrouperRecord(_Model):
    grouper: str
    partition: list[list[str]] | None
    mean_gap: float | None
    regret: float | None  # best measured partition's mean gap - this one's (>= 0)
    rank: int | None
    cost_seconds: NonNegativeFloat
    note: str = ""


class PairGaps(_Model):
    """The measured pair-gap matrix: ``mean[i][j]`` = seed-mean gap of task i trained with task j."""

    tasks: list[str]
    seeds: list[int]
    mean: Matrix
    values: list[Matrix]  # [S][T][T]


class ModelRecord(_Model):
    name: str  # the --model value: preset, folder or hub id
    weights_sha256: str | None  # sha256 over the weight and tokenizer files (tiny: its vocabulary)
    identity: dict[str, Any] = Field(default_factory=dict)


class Provenance(_Model):
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    finished: datetime  # when the run wrote its results (results.json's modification time), UTC
    recorded: datetime  # when this record was made, UTC
    harness_version: str
    git_revision: str | None
    python: str
    libraries: dict[str, str | None]
    plugins: dict[str, str]  # name -> version
    selected_plugins: list[str]  # the --plugin names the run selected tasks from
    profile: str
    config: dict[str, Any]  # the run's config, without where it reported (leaderboard, report_to)
    config_hash: str
    run_sha256: str  # over every job's result.json (by job key): one run is recorded once, resumed or not


class RunRecord(_Model):
    """Everything the leaderboard keeps of one run; the file is the source of truth."""

    schema_version: Literal[1] = SCHEMA_VERSION
    provenance: Provenance
    model: ModelRecord
    seeds: list[int]
    tasks: list[TaskRecord]
    results: list[ResultRow]
    predictors: list[PredictorRecord] = Field(default_factory=list)
    noise_ceiling: ScoreRecord | None = None
    groupers: list[GrouperRecord] = Field(default_factory=list)
    pair_gaps: PairGaps | None = None
    gap_by_size: list[dict[str, Any]] = Field(default_factory=list)
    cost: Cost  # the whole run

    @model_validator(mode="after")
    def _check(self) -> RunRecord:
        names = {t.name for t in self.tasks}
        if len(names) != len(self.tasks):
            raise ValueError("a task is listed twice in tasks")
        unknown = sorted({t for r in self.results for t in r.group} - names)
        if unknown:
            raise ValueError(f"results name tasks not in tasks: {unknown}")
        return self

    @property
    def run_id(self) -> str:
        return self.provenance.run_id

    def task(self, name: str) -> TaskRecord:
        return next(t for t in self.tasks if t.name == name)

    def predictor(self, name: str) -> PredictorRecord | None:
        return next((p for p in self.predictors if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def fingerprint(values: dict[str, str]) -> str:
    """sha256 (first 16 hex digits) of a mapping of fingerprints, order-free."""
    return hashlib.sha256(json.dumps(dict(sorted(values.items()))).encode()).hexdigest()[:16]


def finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
