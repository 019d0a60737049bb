"""Benchmark: what gradient-alignment and TAG measurement add to MTL training at the default schedule.

The all-task MTL run of ``harness run`` (the 16 spine tasks: cervical and lumbar, two input
streams) with the ``TrainingObserver`` every ``observe_every`` optimizer steps (default 50) on
the default probe set (256 rows; 32 rows per stream in the probe batches), against the same
run without it. Each epoch has exactly ``observe_every`` steps (400 rows per stream, batch
16), so every observed epoch takes one measurement. Target: observed / plain epoch <= 1.10.

Not met, and not within reach at this schedule: the measurement's own compute (T backward and
(T + 1) x S forward passes of ``probe_batch`` rows for T tasks on S streams) is about that of
50 training steps. The test is marked xfail so that the bench env reports it (the table says
NOT MET) without hiding the other benchmarks' verdicts; an XPASS means it got met.
"""

from __future__ import annotations

import pytest

from harness.core.config import RunConfig
from tests.benchmarks.spine import SpineJob

EVERY = RunConfig().observe_every  # the default schedule
ROWS = 400  # per stream: 25 batches of 16, two streams: 50 steps = EVERY


@pytest.mark.benchmark(group="observers")
@pytest.mark.xfail(
    reason="not met (2.04 measured, 2026-11-30): one measurement, 16 backward and 34 forward passes of 32 probe "
    "rows, costs about as much as 50 training steps of 16 rows; README, Performance",
    strict=False,
)
def test_observers_add_at_most_ten_percent_to_mtl_training(ratio, bench_threads):
    observed = SpineJob.build(["cervical.", "lumbar."], observe=True, max_train_examples=ROWS)
    plain = SpineJob.build(["cervical.", "lumbar."], max_train_examples=ROWS)
    assert observed.steps == plain.steps == EVERY and len(observed.tasks) == 16
    ratio.measure(
        f"epoch time: MTL with / without gradient and TAG observers (every {EVERY} steps)",
        observed.epoch,
        plain.epoch,
        target=1.10,
        direction="<=",
        labels=("observed epoch", "plain epoch"),
        setup={
            "model": observed.cfg.model,
            "rows": 2 * ROWS,
            "batch": observed.cfg.batch_size,
            "tasks": len(observed.tasks),
            "observe_every": EVERY,
            "probe_batch": observed.cfg.probe_batch,
            "threads": bench_threads,
        },
    )
    assert observed.observations == observed.epochs_run  # one measurement per observed epoch
