"""The spine plugin's hooks: one task per pathology per region, and ``harness spine``.

Tasks are named ``<region>.<pathology>`` (``cervical.canal_stenosis``, ``lumbar.disc``). All
tasks of a region label the same rows (one row per annotated vertebral level, text = the
level's snippet), so they share ``input_group`` ``spine.<region>`` and one encoder pass
serves every pathology head, as in Sehanobish et al. (NAACL 2022 Industry). ``harness predict``
reads whole reports for them (``predict.py``: each region's input reader segments a report into
those snippets).
"""

from __future__ import annotations

import argparse
import functools

from harness.api import Predictor, ProblemType, Register, TaskSpec, hookimpl
from harness_spine import __version__, commands, predict
from harness_spine.corpus import load_split
from harness_spine.levels import REGIONS
from harness_spine.schema import region_pathologies, task_name

__all__ = [
    "__version__",
    "register_commands",
    "register_input_readers",
    "register_predictors",
    "register_tasks",
    "task_specs",
]

ORDINAL_METRICS = ("f1_macro", "accuracy", "quadratic_kappa")
BINARY_METRICS = ("f1_macro", "accuracy")


def task_specs() -> list[TaskSpec]:
    """Every spine task, region by region, pathologies in column order."""
    specs = []
    for region in REGIONS:
        for p in region_pathologies(region):
            specs.append(
                TaskSpec(
                    name=task_name(region, p.name),
                    problem_type=ProblemType.SINGLE_LABEL,
                    text_fields=("text",),
                    loader=functools.partial(load_split, region),
                    metrics=ORDINAL_METRICS if p.ordinal else BINARY_METRICS,
                    labels=p.labels,
                    splits=("train", "dev", "test"),
                    label_column=p.name,
                    input_group=f"spine.{region}",
                    input_reader=predict.READERS[region],
                    description=(
                        f"{p.description}, per vertebral level of {region} spine MRI reports "
                        f"({' < '.join(p.labels)}); synthetic corpus unless --data gives annotated reports"
                    ),
                )
            )
    return specs


@hookimpl
def register_tasks(register: Register) -> None:
    for spec in task_specs():
        register(spec)


@hookimpl
def register_predictors(register: Register) -> None:
    from harness_spine.planted import planted

    register(
        Predictor(
            "planted",
            planted,
            "spine ground truth: rank correlation of two pathologies' labels in the synthetic corpus's planted "
            "model (NaN across regions); its score says whether the planted structure moves the gaps",
        )
    )


@hookimpl
def register_input_readers(register: Register) -> None:
    for reader in predict.readers():
        register(reader)


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    commands.add_commands(subparsers)
