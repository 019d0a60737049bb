"""A trained model scored on annotated spine reports: how well it transfers to reports it was not trained on.

``harness spine evaluate RUN_DIR --data reports.jsonl`` (``commands.py``) runs a run's saved
model over whole annotated reports, as ``harness predict`` does, and scores every labelled
(report, level, pathology) against the annotation, beside the always-normal baseline. The
scoring (``gold_labels``, ``score``) is pure and separate from the model (``predict_gold``).

**Gold.** The labels of user-data reports (``userdata.read_reports``), row by row as the
training pipeline reads them (``corpus.report_rows``): a pathology left out or ``null`` at a
level is unannotated and not scored; a level left out of ``labels`` follows the report's
``unlisted`` ("normal": its pathologies are normal where the segmenter finds text for it;
otherwise, the default, unannotated).

**Predictions** (``predict_gold``): each report is read by its region's input reader
(``predict.read_report``: the training pipeline's segmenter, one snippet per level), and one
encoder pass per snippet gives every head of the region: exactly ``harness predict``'s path
(``harness.inference.engine.predict``), decided as the run's evaluation decides (argmax). A
labelled level for which the segmenter finds no text (its level name unreadable, or not named
in the findings or the impression) is not dropped: it is predicted from an **empty snippet** (``""``), the
text the training pipeline gives such a level (``report_rows``), and counted
(``TransferScores.levels_without_text``). A labelled pathology no chosen model has a head for
is not scored, and counted (``unscored``).

**Figures**, for every scope (all labels; each pathology, its regions pooled; each task
``region.pathology``), for the model and for the **always-normal baseline** (every label
predicted as the pathology's first label: normal, none or absent):

* accuracy = correct / n over the scope's labels (exact label match);
* abnormal accuracy = correct / n over the labels whose gold label is *not* the pathology's
  first label (the exact grade must be right: gold moderate, predicted mild is wrong); the
  baseline's is 0 by construction; undefined (None) for a scope without abnormal labels;
* macro-F1 = ``sklearn.metrics.f1_score(gold, predicted, average="macro", zero_division=0)``
  (scikit-learn's definition: the unweighted mean over labels of 2PR / (P + R), per-label
  precision P and recall R, with P = 0 for a label never predicted and R = 0 for one never in
  gold; *the labels averaged are those present in gold or predicted*, scikit-learn's default,
  as the harness's ``f1_macro`` metric computes it). Labels of different pathologies are different classes, so the "all"
  scope's macro-F1 is the unweighted mean of the per-pathology macro-F1s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.api import MISSING_LABEL
from harness.errors import DataError, RunError
from harness_spine.corpus import report_rows
from harness_spine.levels import REGIONS
from harness_spine.reports import UNLISTED, Report
from harness_spine.schema import region_pathologies, task_name
from harness_spine.segmenter import segment

VERSION = 1  # of the JSON form (``TransferScores.to_dict``)
ALL = "all"  # the scope of every scored label


@dataclass(frozen=True)
class GoldLabel:
    """One labelled (report, level, pathology): the annotated label and the pathology's label names."""

    report_id: str
    region: str
    level: str
    pathology: str
    label: str
    labels: tuple[str, ...]  # ordered, "nothing" (normal, none, absent) first
    has_text: bool  # the segmenter found text for the level (else it is predicted from an empty snippet)

    @property
    def task(self) -> str:
        return task_name(self.region, self.pathology)

    @property
    def normal(self) -> str:
        """The always-normal baseline's prediction: the pathology's first label."""
        return self.labels[0]

    @property
    def abnormal(self) -> bool:
        return self.label != self.labels[0]


def gold_labels(reports: Iterable[Report]) -> list[GoldLabel]:
    """Every labelled (report, level, pathology) of ``reports``, in report, level and column order
    (see the module docstring: unannotated pathologies are left out, ``unlisted`` is honoured)."""
    gold = []
    for report in reports:
        snippets = dict(segment(report.text, report.region, impression=True))  # as the input reader reads it
        unlisted = report.unlisted or UNLISTED[0]
        for row in report_rows(report, snippets, unlisted):
            for p in region_pathologies(report.region):
                index = row[p.name]
                if index == MISSING_LABEL:
                    continue
                gold.append(
                    GoldLabel(
                        report.report_id, report.region, row["level"], p.name, p.labels[index], p.labels,
                        bool(row["text"]),
                    )
                )  # fmt: skip
    return gold


@dataclass(frozen=True)
class Score:
    """One scope's figures for one predictor (module docstring: definitions)."""

    labels: int
    correct: int
    abnormal: int  # labels whose gold label is not the first
    abnormal_correct: int
    f1_macro: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.labels

    @property
    def abnormal_accuracy(self) -> float | None:
        return self.abnormal_correct / self.abnormal if self.abnormal else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "abnormal": self.abnormal,
            "abnormal_correct": self.abnormal_correct,
            "abnormal_accuracy": self.abnormal_accuracy,
            "f1_macro": self.f1_macro,
        }


@dataclass(frozen=True)
class ScopeScores:
    """The model's and the always-normal baseline's figures on one scope."""

    scope: str  # ALL, a pathology ("disc") or a task ("cervical.disc")
    model: Score
    baseline: Score

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), "always_normal": self.baseline.to_dict()}


@dataclass(frozen=True)
class TransferScores:
    """Every scope's figures and what was (not) scored."""

    overall: ScopeScores
    pathologies: tuple[ScopeScores, ...]  # pathologies in column order (cervical's first, then lumbar's own)
    tasks: tuple[ScopeScores, ...]  # region by region, pathologies in column order
    reports: int  # reports with at least one scored label
    levels: int  # labelled levels with at least one scored label
    levels_without_text: int  # of those, levels the segmenter found no text for (predicted from "")
    labels_without_text: int  # scored labels at those levels
    unscored: int  # labels of tasks no model has a head for
    unscored_tasks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON form (figures and counts only: no label, id or text)."""
        return {
            "version": VERSION,
            "overall": self.overall.to_dict(),
            "pathologies": {s.scope: s.to_dict() for s in self.pathologies},
            "tasks": {s.scope: s.to_dict() for s in self.tasks},
            "counts": {
                "reports": self.reports,
                "levels": self.levels,
                "labels": self.overall.model.labels,
                "abnormal": self.overall.model.abnormal,
                "levels_without_text": self.levels_without_text,
                "labels_without_text": self.labels_without_text,
                "unscored": self.unscored,
                "unscored_tasks": list(self.unscored_tasks),
            },
        }


def score(gold: Sequence[GoldLabel], predicted: Sequence[str | None]) -> TransferScores:
    """The figures of ``predicted`` (one label per gold label, in order; None where no model has
    the task's head: not scored) and of the always-normal baseline. ``DataError`` when nothing is
    scored; ``ValueError`` when the two sequences differ in length."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    pairs = [(g, p) for g, p in zip(gold, predicted, strict=True) if p is not None]
    if not pairs:
        raise DataError("no labelled pathology that the model predicts: nothing to score")
    by_pathology: dict[str, list[tuple[GoldLabel, str]]] = {}
    by_task: dict[str, list[tuple[GoldLabel, str]]] = {}
    for g, p in pairs:
        by_pathology.setdefault(g.pathology, []).append((g, p))
        by_task.setdefault(g.task, []).append((g, p))
    pathologies = tuple(_scope(name, by_pathology[name]) for name in _pathology_order() if name in by_pathology)
    tasks = tuple(_scope(name, by_task[name]) for name in _task_order() if name in by_task)
    overall = ScopeScores(
        ALL,
        _score(pairs, [p for _, p in pairs], _mean([s.model.f1_macro for s in pathologies])),
        _score(pairs, [g.normal for g, _ in pairs], _mean([s.baseline.f1_macro for s in pathologies])),
    )
    levels = {(g.report_id, g.level): g.has_text for g, _ in pairs}
    unscored = [g.task for g, p in zip(gold, predicted, strict=True) if p is None]
    return TransferScores(
        overall,
        pathologies,
        tasks,
        reports=len({g.report_id for g, _ in pairs}),
        levels=len(levels),
        levels_without_text=sum(not has_text for has_text in levels.values()),
        labels_without_text=sum(not g.has_text for g, _ in pairs),
        unscored=len(unscored),
        unscored_tasks=tuple(t for t in _task_order() if t in set(unscored)),
    )


def _scope(name: str, pairs: Sequence[tuple[GoldLabel, str]]) -> ScopeScores:
    model = [p for _, p in pairs]
    normal = [g.normal for g, _ in pairs]
    return ScopeScores(name, _score(pairs, model, _f1(pairs, model)), _score(pairs, normal, _f1(pairs, normal)))


def _score(pairs: Sequence[tuple[GoldLabel, str]], predicted: Sequence[str], f1: float) -> Score:
    hits = [g.label == p for (g, _), p in zip(pairs, predicted, strict=True)]
    abnormal = [hit for (g, _), hit in zip(pairs, hits, strict=True) if g.abnormal]
    return Score(len(hits), sum(hits), len(abnormal), sum(abnormal), f1)


def _f1(pairs: Sequence[tuple[GoldLabel, str]], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score([g.label for g, _ in pairs], list(predicted), average="macro", zero_division=0))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _pathology_order() -> list[str]:
    return list(dict.fromkeys(p.name for region in REGIONS for p in region_pathologies(region)))


def _task_order() -> list[str]:
    return [task_name(region, p.name) for region in REGIONS for p in region_pathologies(region)]


# --- the model's predictions -------------------------------------------------------------------


def model_tasks(folders: Mapping[str, Path], gold: Sequence[GoldLabel] = ()) -> dict[str, str]:
    """Task -> the key of the model (``folders``: job key -> saved model folder) that has its head,
    read from the saved descriptions (no model loaded). ``RunError`` when two models have a head
    for the same task (each task is scored by one model), or when a head for a task of ``gold``
    has other label names than the plugin's (a model of another task version)."""
    from harness.training.saved import read_info

    expected = {g.task: g.labels for g in gold}
    owner: dict[str, str] = {}
    for key, folder in folders.items():
        for head in read_info(folder).heads:
            if head.task in owner:
                raise RunError(
                    f"jobs {owner[head.task]} and {key} both predict {head.task}; score one model per task "
                    "(--job all, --job stl or one job key)"
                )
            if head.task in expected and tuple(head.labels) != expected[head.task]:
                raise RunError(
                    f"job {key}: its head for {head.task} predicts {', '.join(head.labels)}, not the spine "
                    f"plugin's {', '.join(expected[head.task])}; train it again with this version of the plugin"
                )
            owner[head.task] = key
    return owner


def predict_gold(
    folders: Mapping[str, Path],
    reports: Sequence[Report],
    gold: Sequence[GoldLabel],
    readers: Any,
    *,
    device: str = "cpu",
    batch_size: int = 64,
    where: str = "reports",
) -> list[str | None]:
    """The chosen models' label for every gold label (None where no model has the task's head).

    ``folders``: job key -> saved model folder (``harness.inference.jobs.model_folder``), each
    model with its own tasks (``model_tasks``); ``readers``: the input-reader registry
    (``build_registries(...).readers``). Each model whose heads cover a gold label is loaded in
    turn and run over the whole reports as ``harness predict`` runs it; a labelled level the
    reader gives no snippet for gets the model's prediction for an empty snippet. ``RunError`` as
    ``model_tasks`` and ``input_groups`` raise it (before any model is loaded); ``where`` (the reports' file)
    prefixes a reader's error, which names the report by its position in ``reports``.
    """
    from harness.inference.engine import input_groups, predict
    from harness.training.saved import load_saved, read_info

    wanted = {g.task for g in gold}
    owner = model_tasks(folders, gold)
    found: dict[tuple[str, str, str], str] = {}  # (report_id, level, task) -> label
    empty: dict[str, str] = {}  # task -> label predicted from an empty snippet
    records = [(n, {"report_id": r.report_id, "region": r.region, "text": r.text}) for n, r in enumerate(reports, 1)]
    plan = []  # every model's reader groups are found before the first model is loaded
    for key, folder in folders.items():
        groups = [g for g in input_groups(read_info(folder), readers) if wanted & set(g.tasks)]
        if groups:  # else no labelled pathology of this model's: it is not loaded
            plan.append((key, folder, groups))
    for key, folder, groups in plan:
        loaded = load_saved(folder, device)
        for p in predict(loaded, groups, records, where=where, batch_size=batch_size):
            if p.task in wanted and p.id is not None:
                found[(p.id, p.unit, p.task)] = str(p.label)
        if any(owner.get(g.task) == key and (g.report_id, g.level, g.task) not in found for g in gold):
            empty.update(_empty_snippet(loaded, groups))
    out: list[str | None] = []
    for g in gold:
        if g.task not in owner:
            out.append(None)
        elif (g.report_id, g.level, g.task) in found:
            out.append(found[(g.report_id, g.level, g.task)])
        else:  # the reader gave no snippet for the level (gold_labels' has_text: the same segmenter)
            out.append(empty[g.task])
    return out


def _empty_snippet(loaded: Any, groups: Sequence[Any]) -> dict[str, str]:
    """Task -> the label each head of ``groups`` gives an empty snippet (one encoder pass per group)."""
    from harness.inference.engine import decide, head_logits

    out = {}
    for group in groups:
        logits = head_logits(loaded, [("",) * len(group.text_fields)], group.tasks)  # task -> [1, outputs]
        for head in group.heads:
            out[head.task] = str(decide(head, logits[head.task][0])[0])
    return out
