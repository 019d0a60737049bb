"""Benchmark: one MTL epoch over all pathology heads of a region vs one STL epoch, same snippets.

Shared-input MTL runs the encoder once per batch for every head, so its epoch should cost
about what an STL epoch costs: MTL / STL epoch time <= 1.1, median of 9 interleaved rounds
(``ratio`` fixture), the tiny model on the 8 cervical tasks' snippets (``smoke`` settings:
480 rows, batch 16, 64 tokens).
"""

from __future__ import annotations

import pytest

from tests.benchmarks.spine import SpineJob


@pytest.mark.benchmark(group="spine-epoch")
def test_mtl_epoch_costs_about_one_stl_epoch(ratio, bench_threads):
    stl = SpineJob.build(["cervical."], first_only=True)
    mtl = SpineJob.build(["cervical."])
    assert len(mtl.tasks) == 8 and mtl.steps == stl.steps  # the same batches, 8 heads instead of 1
    ratio.measure(
        "epoch time: MTL (8 cervical heads, shared inputs) / STL",
        mtl.epoch,
        stl.epoch,
        rounds=9,  # epochs of 1-2 s: a load change of a few seconds moves a median of 5
        target=1.1,
        direction="<=",
        labels=("MTL epoch", "STL epoch"),
        setup={
            "model": mtl.cfg.model,
            "rows": mtl.cfg.max_train_examples,
            "batch": mtl.cfg.batch_size,
            "tasks": len(mtl.tasks),
            "threads": bench_threads,
        },
    )
