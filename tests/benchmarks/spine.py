"""Spine training setups for the MTL benchmarks: a prepared job of the cervical (and lumbar) tasks.

``SpineJob.build`` prepares a job exactly as ``run_job`` does (``prepare_training``) on the
spine plugin's default corpus, the tiny model and the ``smoke`` profile's settings (64 tokens,
batch 16); ``epoch()`` trains one epoch with ``train_epoch``, seeded as ``run_job`` seeds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class SpineJob:
    job: Any  # harness.training.runner.PreparedJob
    tasks: list[Any]
    cfg: Any
    epochs_run: int = 0

    @classmethod
    def build(
        cls, prefixes: Sequence[str], first_only: bool = False, observe: bool = False, **overrides: Any
    ) -> SpineJob:
        """The tasks whose names start with one of ``prefixes`` (only the first with ``first_only``);
        ``observe``: with the gradient-alignment and TAG observer at ``cfg.observe_every`` (as the
        all-task run of ``harness run`` has it). ``overrides``: RunConfig fields over ``smoke``."""
        from harness.analyses.observers import TrainingObserver
        from harness.analyses.probe import build_probe
        from harness.api import LoadContext
        from harness.core.config import resolve
        from harness.core.plugins import build_registries, new_manager
        from harness.protocol.execute import make_accelerator
        from harness.training.model import load_tokenizer
        from harness.training.runner import TrainSetup, prepare_training

        registries = build_registries(new_manager(load=["spine"], autoload=False))
        tasks = [e.value for e in registries.tasks if e.name.startswith(tuple(prefixes))]
        tasks = tasks[:1] if first_only else tasks
        cfg = dataclasses.replace(resolve("smoke"), epochs=64, **overrides)
        ctx = LoadContext(profile="default")
        observers = []
        if observe:
            probe = build_probe(tasks, ctx, load_tokenizer(cfg.model), cfg, seed=cfg.data_seed)
            observers.append(TrainingObserver(probe, every=cfg.observe_every))
        kind = "mtl" if len(tasks) > 1 else "stl"
        setup = TrainSetup(kind, tasks, 0, registries.metrics, cfg, ctx, make_accelerator(cfg))
        return cls(prepare_training(setup, observers=observers), tasks, cfg)

    @property
    def steps(self) -> int:
        """Optimizer steps per epoch."""
        return int(self.job.steps)

    @property
    def observations(self) -> int:
        """Gradient/TAG measurements taken so far (0 without an observer)."""
        return sum(o.measurements for o in self.job.training.observers)

    def epoch(self) -> None:
        from accelerate.utils import set_seed

        from harness.training.runner import train_epoch

        seed = 10_007 + self.epochs_run
        set_seed(seed)
        train_epoch(self.job.training, self.epochs_run, seed)
        self.epochs_run += 1
