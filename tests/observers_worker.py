"""Gradient measurements on the ``uneven`` fixture tasks, on however many processes run this.

``python -m torch.distributed.run --nproc_per_node 2 tests/observers_worker.py OUT [bf16|no]``
saves (rank 0) what ``compute`` returns; the test calls ``compute`` in-process for 1 process.
The probe batches (7 rows) split 4/3 over two processes, with missing labels on both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

LR = 1e-3


def compute(acc: Any) -> dict[str, Any]:
    import uneven

    from harness.analyses.features import layer_features
    from harness.analyses.observers import measure, task_gradients
    from harness.analyses.probe import ProbeStream, build_probe
    from harness.api import LoadContext
    from harness.core.config import RunConfig
    from harness.core.plugins import build_registries, new_manager
    from harness.training.model import HeadSpec, build_model
    from harness.training.runner import batch_loss

    registries = build_registries(new_manager(autoload=False, extra=[("uneven", uneven)]))
    tasks = [registries.tasks.get(n) for n in ("uneven.reg", "uneven.a", "uneven.b")]
    torch.manual_seed(0)
    model, tokenizer = build_model("tiny", [HeadSpec.of(t) for t in tasks], "mean", 0.1)
    with acc.main_process_first():
        probe = build_probe(tasks, LoadContext(), tokenizer, RunConfig(probe_examples=26, probe_batch=7), seed=0)
    model = acc.prepare(model)
    grads = task_gradients(model, probe.batches(), acc)
    before = measure(model, probe, acc, lr=LR)
    features = layer_features(model, probe, acc, "mean")

    # One DDP training step on this process's share of the pair stream's probe batch (global
    # loss as the runner normalises it): DDP must still work after a measurement, and the next
    # measurement must again match one process.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batch: ProbeStream = probe.batches()[1]
    base, extra = divmod(batch.rows, acc.num_processes)
    start = acc.process_index * base + min(acc.process_index, extra)
    part = batch.part(start, start + base + (acc.process_index < extra))
    model.eval()  # no dropout: one process and two draw different dropout masks
    with acc.autocast():
        logits = model(tasks=part.task_names, **{k: v.to(acc.device) for k, v in part.inputs.items()})
    acc.backward(batch_loss(logits, dict(part.labels), acc.unwrap_model(model).specs, acc))
    optimizer.step()
    optimizer.zero_grad()
    after = measure(model, probe, acc, lr=LR)
    return {
        "processes": acc.num_processes,
        "grads": {t: {n: g.detach().cpu() for n, g in per.items()} for t, per in grads.items()},
        "cosine": before.alignment.per_layer,
        "tag": before.tag,
        "features": features,
        "cosine_after_step": after.alignment.overall,
        "tag_after_step": after.tag,
    }


def main() -> None:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    out, precision = Path(sys.argv[1]), sys.argv[2]
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)  # the score head idles in a pair step
    acc = Accelerator(mixed_precision=precision, kwargs_handlers=[ddp])
    result = compute(acc)
    if acc.is_main_process:
        torch.save(result, out)
    acc.end_training()


if __name__ == "__main__":
    main()
