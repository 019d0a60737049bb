"""The public plugin API: what third-party plugins import.

These names are stable: ``hookimpl``, ``TaskSpec``, ``ProblemType``, ``LoadContext``,
``Metric``, ``Grouper``, ``Predictor``, ``InputReader``, ``MISSING_LABEL``, the ``Register`` callback
type and ``DataError``, the error a loader raises for bad or missing data. Import them from ``harness``
(re-exported there, with ``HarnessError`` and ``load_cards``) or from ``harness.api``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DataError, HarnessError, PluginError, TaskSpecError
from harness.hookspecs import Register, hookimpl

if TYPE_CHECKING:
    import datasets

__all__ = [
    "MISSING_LABEL",
    "SPLITS",
    "DataError",
    "Grouper",
    "InputReader",
    "LoadContext",
    "Loader",
    "Metric",
    "Predictor",
    "ProblemType",
    "Register",
    "TaskSpec",
    "Unit",
    "hookimpl",
]

#: Label value meaning "not annotated" for classification tasks (masked out of loss and
#: metrics). Regression tasks use NaN; multi-label tasks a row of MISSING_LABEL.
MISSING_LABEL = -100

#: Split names a task may provide, in this order.
SPLITS = ("train", "dev", "test")

NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


class ProblemType(StrEnum):
    """What a task's head predicts; decides the loss and the prediction format."""

    SINGLE_LABEL = "single_label_classification"  # softmax + cross-entropy; label = class index
    MULTI_LABEL = "multi_label_classification"  # sigmoid + BCE; label = 0/1 vector
    REGRESSION = "regression"  # one output + MSE; label = float

    @classmethod
    def parse(cls, value: str | ProblemType, where: str, error: type[HarnessError] = TaskSpecError) -> ProblemType:
        """``value`` as a ProblemType; ``error`` naming ``where`` and the known values if it is none."""
        try:
            return cls(value)
        except ValueError:
            known = ", ".join(p.value for p in cls)
            raise error(f"{where}: unknown problem_type {value!r}; use one of: {known}") from None


@dataclass(frozen=True)
class LoadContext:
    """What a task loader gets besides the split name."""

    data_dir: Path | None = None  # `--data PATH` (a folder or a file), or None for the default
    seed: int = 0  # data seed: synthetic corpora and splits derived from it
    profile: str = "default"  # run profile, so a loader can size a synthetic corpus
    options: Mapping[str, str] = field(default_factory=dict)  # `--data-option key=value`


#: ``loader(split, context) -> datasets.Dataset`` with the text fields and the label column.
Loader = Callable[[str, LoadContext], "datasets.Dataset"]


@dataclass(frozen=True)
class TaskSpec:
    """One classification or regression task.

    The loader returns, for each split in ``splits``, a ``datasets.Dataset`` holding the
    ``text_fields`` (strings) and, when the split is labelled, ``label_column``: a class
    index (single-label), a 0/1 list of ``len(labels)`` (multi-label) or a float
    (regression). Unannotated rows carry ``MISSING_LABEL`` (NaN for regression).

    Tasks with the same ``input_group`` label the same inputs: their loaders return the
    same rows in the same order for every split, so one encoder pass serves them all.

    ``input_reader``: the registered ``InputReader`` that turns a record of a ``harness predict``
    input file into what the task classifies: ``"rows"`` (built in: a row holding the text
    fields) unless the task classifies pieces of a larger input (the spine tasks: the per-level
    snippets of a whole report). Saved with every trained model (``harness.json``).

    ``version``: the task definition's version (labels, metrics, what the loader means); bump it
    when results of the old definition must no longer be compared with the new (the leaderboard
    compares a task's results only within one version and one data fingerprint).
    """

    name: str
    problem_type: ProblemType
    text_fields: tuple[str, ...]
    loader: Loader
    metrics: tuple[str, ...]  # primary metric first
    labels: tuple[str, ...] = ()  # class names; empty for regression
    splits: tuple[str, ...] = ("train", "dev")
    label_column: str = "label"
    input_group: str | None = None
    description: str = ""
    version: str = "1"
    input_reader: str = "rows"

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise TaskSpecError(
                f"task name {self.name!r} is invalid: use lower-case letters, digits, '_', '-', '.', "
                "starting with a letter"
            )
        object.__setattr__(self, "problem_type", ProblemType.parse(self.problem_type, where))
        for attr in ("text_fields", "metrics", "labels", "splits"):
            value = getattr(self, attr)
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise TaskSpecError(f"{where}: {attr} must be a list of strings, got {value!r}")
            object.__setattr__(self, attr, tuple(value))
        if not 1 <= len(self.text_fields) <= 2:
            raise TaskSpecError(f"{where}: text_fields needs one or two fields, got {list(self.text_fields)}")
        if not self.metrics:
            raise TaskSpecError(f"{where}: metrics is empty; list at least the primary metric")
        if self.problem_type is ProblemType.REGRESSION:
            if self.labels:
                raise TaskSpecError(f"{where}: a regression task has no labels; remove 'labels'")
        elif len(self.labels) < 2:
            raise TaskSpecError(f"{where}: a classification task needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise TaskSpecError(f"{where}: labels contain duplicates: {list(self.labels)}")
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or "train" not in self.splits or "dev" not in self.splits:
            raise TaskSpecError(
                f"{where}: splits must include 'train' and 'dev' and be among {SPLITS}, got {list(self.splits)}"
            )
        if not callable(self.loader):
            raise TaskSpecError(f"{where}: loader must be callable (split, context) -> datasets.Dataset")
        if not isinstance(self.version, str) or not self.version.strip():
            raise TaskSpecError(f"{where}: version must be a non-empty string, got {self.version!r}")
        if not isinstance(self.input_reader, str) or not NAME_RE.match(self.input_reader):
            raise TaskSpecError(
                f"{where}: input_reader must name a registered InputReader (e.g. 'rows'), got {self.input_reader!r}"
            )

    @property
    def num_outputs(self) -> int:
        """Width of the task's head."""
        return 1 if self.problem_type is ProblemType.REGRESSION else len(self.labels)


@dataclass(frozen=True)
class Metric:
    """A metric: ``fn(predictions, references) -> float`` over numpy arrays.

    Predictions are class indices (single-label), 0/1 matrices (multi-label) or floats
    (regression); rows with missing labels are removed before the call. ``problem_types`` are
    the problem types ``fn`` can score (every type unless given): a task naming a metric that
    cannot score its problem type is refused when plugins load, not after training.
    """

    name: str
    fn: Callable[[Any, Any], float]
    higher_is_better: bool = True
    description: str = ""
    problem_types: tuple[ProblemType | str, ...] = tuple(ProblemType)

    def __post_init__(self) -> None:
        where = f"metric {self.name!r}"
        types = self.problem_types
        if isinstance(types, str) or not isinstance(types, Sequence) or not types:
            raise PluginError(f"{where}: problem_types must be a non-empty list of problem types, got {types!r}")
        parsed = tuple(dict.fromkeys(ProblemType.parse(t, where, PluginError) for t in types))
        object.__setattr__(self, "problem_types", parsed)

    def supports(self, problem_type: ProblemType | str) -> bool:
        """Whether ``fn`` can score predictions of ``problem_type``."""
        return ProblemType(problem_type) in self.problem_types


@dataclass(frozen=True)
class Grouper:
    """A grouping strategy: ``fn(tasks, context) -> list[list[task name]]`` (a partition).

    ``context`` holds ``matrices`` ({predictor name: [T, T] float64, higher = should share}),
    ``pair_gaps`` (the seed-mean measured pair-gap matrix, or None without ``--pairs``),
    ``predictor`` (the name after the colon in ``--groupers NAME:PREDICTOR``, or None) and
    ``seed``. ``uses`` declares what the grouper needs: "" (nothing), "predictor" (a predictor
    named after the colon), or "pair_gaps" (``--pairs``). The core checks that the result is a
    partition of the selected tasks.
    """

    name: str
    fn: Callable[[Sequence[TaskSpec], Mapping[str, Any]], list[list[str]]]
    description: str = ""
    uses: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "grouper")
        if self.uses not in ("", "predictor", "pair_gaps"):
            raise PluginError(f"grouper {self.name!r}: uses must be '', 'predictor' or 'pair_gaps', got {self.uses!r}")


@dataclass(frozen=True)
class Predictor:
    """A predictor of MTL compatibility: ``fn(tasks, artifacts) -> task x task matrix``.

    The result is a [T, T] array (or a mapping with ``matrix`` and JSON-ready ``details``) in
    the order of ``tasks``: ``matrix[i, j]`` is the predicted benefit to task i of sharing a
    model with task j, higher = should share. ``needs`` names the run artifacts it reads
    (``ARTIFACTS``; README, "Write a plugin"), so its cost can be charged and a run without them skips it
    with a reason; ``symmetric`` declares whether matrix[i, j] == matrix[j, i] by construction.
    """

    name: str
    fn: Callable[[Sequence[TaskSpec], Mapping[str, Any]], Any]
    description: str = ""
    needs: tuple[str, ...] = ()
    symmetric: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name, "predictor")
        needs = self.needs
        if isinstance(needs, str) or not isinstance(needs, Sequence):
            raise PluginError(f"predictor {self.name!r}: needs must be a list of artifact names, got {needs!r}")
        unknown = [n for n in needs if n not in ARTIFACTS]
        if unknown:
            raise PluginError(
                f"predictor {self.name!r}: unknown artifact(s) {', '.join(map(repr, unknown))} in needs; "
                f"known: {', '.join(ARTIFACTS)}"
            )
        object.__setattr__(self, "needs", tuple(needs))


#: One unit to classify: (its name within the record, e.g. a vertebral level, "" when the record is
#: the unit; one text per text field of the task).
Unit = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class InputReader:
    """How ``harness predict`` turns one record of an input file into the units a task classifies.

    ``fn(record, text_fields)``: ``record`` is one input (the object of a JSONL line, or a TSV/CSV
    row keyed by its header); ``text_fields`` are the task's. It returns None when the record is
    not this reader's kind of input (then the task's model skips it: a lumbar report for a
    cervical model, a row without the task's fields), else a list (possibly empty) of units
    ``(unit, texts)`` with one string per text field. A record it cannot read (a field of the
    wrong type) raises ``DataError`` naming the field, never quoting the input's text. Records
    are read one at a time: a reader holds no state between calls.

    ``id_field``: the record's field that identifies it in the output (``id``; the spine
    reader's ``report_id``); ``unit``: the output column naming the units (``level``), "" when a
    record is one unit.
    """

    name: str
    fn: Callable[[Mapping[str, Any], tuple[str, ...]], list[Unit] | None]
    description: str = ""
    id_field: str = "id"
    unit: str = ""

    def __post_init__(self) -> None:
        _check_name(self.name, "input reader")
        for attr in ("id_field", "unit"):
            if not isinstance(getattr(self, attr), str):
                raise PluginError(f"input reader {self.name!r}: {attr} must be a string")


#: The run artifacts a predictor may read (README, "Write a plugin: predictors and groupers").
ARTIFACTS = (
    "features",
    "init_features",
    "init_gradients",
    "training",
    "train_sizes",
    "train_labels",
    "input_groups",
)


def _check_name(name: object, kind: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(
            f"{kind} name {name!r} is invalid: use lower-case letters, digits, '_', '-', '.', starting with a "
            f"letter (no ':', which separates a grouper from its predictor in --groupers)"
        )
