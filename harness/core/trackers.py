"""Experiment trackers (``--report-to``): accelerate's tracking API, named and checked here.

A run reports to ``RUN_DIR/<tracker>/``: each training job as the tracker run ``<job key>``
(per optimizer step the training loss and learning rate, per epoch the dev metrics and the
epoch's mean loss, all at the job's global step) and the run's final values as ``run``. Only
the main process writes (accelerate's ``log`` and trackers are main-process only). The tracker
packages are optional extras, imported only when a run reports to them.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

#: Trackers ``report_to`` accepts: accelerate's tracker name -> (module it needs, harness extra that installs it).
#: Another of accelerate's trackers (wandb, mlflow, ...) is one line here and an extra in pyproject.toml;
#: only tensorboard is tested.
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
}


def parse_report_to(text: str) -> tuple[str, ...]:
    """The tracker names of a ``report_to`` value (comma-separated; "" = none), each one known.

    Raises ``ConfigError`` listing the supported trackers for an unknown name.
    """
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ConfigError(
            f'report_to: unknown tracker {unknown[0]!r}; supported: {", ".join(TRACKERS)} (or "" for none)'
        )
    return names


def require(text: str) -> tuple[str, ...]:
    """The trackers of ``text``, after checking that each one's package imports.

    Raises ``ConfigError`` (what is missing, how to install it) so a run fails before training.
    """
    names = parse_report_to(text)
    for name in names:
        module, extra = TRACKERS[name]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"--report-to {name}: the {module} package is not installed; pip install 'harness[{extra}]'"
            ) from None
    return names


def accelerator_kwargs(report_to: str, tracking_dir: Path | None) -> dict[str, Any]:
    """``Accelerator`` keywords that enable the trackers of ``report_to`` in ``tracking_dir`` ({} when off)."""
    names = require(report_to)
    if not names or tracking_dir is None:
        return {}
    return {"log_with": list(names), "project_dir": str(tracking_dir)}


def run_tracking_dir(run_dir: Path, report_to: str) -> Path | None:
    """Where a run's trackers write: ``RUN_DIR/tensorboard`` (named after the first tracker); None when off.

    Each training job is one tracker run in there (its key), the run's final values another (``run``).
    """
    names = parse_report_to(report_to)
    return run_dir / names[0] if names else None


def tracking(acc: Any) -> bool:
    """Whether ``acc`` reports to trackers (the same answer on every process)."""
    return bool(getattr(acc, "log_with", None))


@contextlib.contextmanager
def tracker_run(acc: Any, name: str, first_step: int | None = None) -> Iterator[bool]:
    """Open tracker run ``name`` on ``acc`` (nothing when it does not track) and close it after the block.

    ``first_step``: the first step this process logs; TensorBoard hides what an earlier,
    interrupted process logged for the same run at or after it (a resumed job). The trackers
    are finished, not ``acc.end_training()``: that would also end the process group, which the
    run's later jobs still use. Yields ``tracking(acc)``.
    """
    if not tracking(acc):
        yield False
        return
    acc.init_trackers(name, init_kwargs={"tensorboard": {"purge_step": first_step}} if first_step else {})
    try:
        yield True
    finally:
        for tracker in acc.trackers:
            tracker.finish()
        acc.trackers.clear()


def epoch_values(record: dict[str, Any], metrics: dict[str, list[str]]) -> dict[str, float]:
    """An epoch's logged values: ``train/epoch_loss``, ``dev/selection`` and ``dev/<task>/<metric>``.

    ``record``: one entry of a job's history; ``metrics``: each task's metric names. A metric
    that is None (no labelled row) or not finite is left out.
    """
    values: dict[str, Any] = {"train/epoch_loss": record["train_loss"], "dev/selection": record["selection"]}
    for task, names in metrics.items():
        values.update({f"dev/{task}/{metric}": record["dev"][task][metric] for metric in names})
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
