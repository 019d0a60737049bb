"""Benchmark: one MTL epoch over all pathology heads of a region vs one STL epoch, same snippets.

Shared-input MTL runs the encoder once per batch for every head, so its epoch should cost
about what an STL epoch costs. Run with ``tox -e bench`` (pytest-benchmark); both timings come
from the same session, interleaved, and their ratio is recorded in the benchmark's extra_info.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch.utils.data import DataLoader

from harness.api import LoadContext
from harness.core.config import resolve
from harness.core.plugins import build_registries, new_manager
from harness.data.streams import Collator
from harness.protocol.experiment import make_accelerator
from harness.training.model import HeadSpec, build_model
from harness.training.progress import JobProgress
from harness.training.runner import Training, _optimizer, prepare_data, train_epoch

MAX_RATIO = 1.3
ROUNDS = 5


def _epoch_runner(tasks, cfg, ctx, acc):
    torch.manual_seed(0)
    model, tokenizer = build_model(cfg.model, [HeadSpec.of(t) for t in tasks], cfg.pooling, cfg.dropout)
    data = prepare_data(tasks, tokenizer, cfg, ctx, acc)
    loader = DataLoader(
        data.train[0], batch_size=cfg.batch_size, shuffle=True, collate_fn=Collator(tokenizer, data.streams[0])
    )
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    model, optimizer, scheduler, loader = acc.prepare(model, optimizer, scheduler, loader)
    epoch = iter(range(10_000))
    training = Training(model, [loader], data.streams, optimizer, scheduler, acc, cfg, JobProgress())
    return lambda: train_epoch(training, next(epoch), 0)


@pytest.mark.benchmark(group="spine-epoch")
def test_mtl_epoch_costs_about_one_stl_epoch(benchmark):
    registries = build_registries(new_manager(load=["spine"], autoload=False))
    tasks = [e.value for e in registries.tasks if e.name.startswith("cervical.")]
    cfg = resolve("smoke")
    ctx = LoadContext(profile="default")
    acc = make_accelerator(cfg)
    stl = _epoch_runner(tasks[:1], cfg, ctx, acc)
    mtl = _epoch_runner(tasks, cfg, ctx, acc)
    stl(), mtl()  # warm-up
    stl_times: list[float] = []

    def time_stl_epoch() -> None:  # pedantic's untimed setup: interleaved with the timed MTL rounds
        start = time.perf_counter()
        stl()
        stl_times.append(time.perf_counter() - start)

    benchmark.pedantic(mtl, setup=time_stl_epoch, rounds=ROUNDS, iterations=1)
    stl_epoch = sorted(stl_times)[len(stl_times) // 2]
    mtl_epoch = benchmark.stats.stats.median
    ratio = mtl_epoch / stl_epoch
    benchmark.extra_info.update(
        {"tasks": len(tasks), "stl_epoch_s": stl_epoch, "mtl_epoch_s": mtl_epoch, "ratio": ratio, "rows": 603}
    )
    print(f"\n{len(tasks)} heads: MTL epoch {mtl_epoch:.2f}s, STL epoch {stl_epoch:.2f}s, ratio {ratio:.2f}")
    assert ratio <= MAX_RATIO
