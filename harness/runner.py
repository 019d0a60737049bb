"""One training job on accelerate: STL is a job with one task, MTL a job with several.

The same code runs on one CPU, several processes (``torchrun``/``accelerate launch``) or
many GPUs. Per epoch: train on the sampling schedule, evaluate dev (and labelled test),
keep the best epoch by the mean primary dev metric, save the state for ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from harness.api import MISSING_LABEL, LoadContext, TaskSpec
from harness.config import RunConfig
from harness.data import Collator, Stream, make_streams, split_batch, stream_split, tokenize
from harness.errors import RunError
from harness.model import HeadSpec, build_model, predictions, task_loss
from harness.progress import track
from harness.registry import Registry
from harness.sampling import epoch_schedule

log = logging.getLogger("harness")


@dataclass(frozen=True)
class JobData:
    streams: list[Stream]
    train: list[Any]  # tokenized datasets, one per stream
    eval: dict[str, list[tuple[Stream, Any]]]  # split -> (stream, tokenized dataset)
    fingerprints: dict[str, str]  # "<stream>/<split>" -> datasets fingerprint


def prepare_data(
    tasks: Sequence[TaskSpec], tokenizer: Any, cfg: RunConfig, ctx: LoadContext, acc: Accelerator
) -> JobData:
    streams = make_streams(tasks)
    train, evals, prints = [], {"dev": [], "test": []}, {}  # type: ignore[var-annotated]
    with acc.main_process_first():
        for stream in streams:
            for split in ("train", "dev", "test"):
                limit = cfg.max_train_examples if split == "train" else cfg.max_eval_examples
                dataset = stream_split(stream, split, ctx, limit)
                if dataset is None:
                    continue
                prints[f"{stream.key}/{split}"] = dataset._fingerprint
                tokenized = tokenize(dataset, stream, tokenizer, cfg.max_length, acc.is_main_process)
                (train.append(tokenized) if split == "train" else evals[split].append((stream, tokenized)))
    return JobData(streams, train, {k: v for k, v in evals.items() if v}, prints)


def train_loader(dataset: Any, stream: Stream, tokenizer: Any, cfg: RunConfig) -> DataLoader:
    """Shuffled batches; with ``group_by_length``, of similar lengths (less padding, same examples)."""
    collate = Collator(tokenizer, stream)
    if not cfg.group_by_length:
        return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate)
    from transformers.trainer_pt_utils import LengthGroupedSampler

    # Draws its permutation from the global RNG, which is seeded per epoch identically on every rank.
    sampler = LengthGroupedSampler(cfg.batch_size, lengths=[len(ids) for ids in dataset["input_ids"]])
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)


def _optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW; no decay on biases and LayerNorm; heads at ``head_learning_rate`` when set."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        key = (name.startswith("heads."), param.ndim < 2 or "LayerNorm" in name)
        groups.setdefault(key, []).append(param)
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    return torch.optim.AdamW(
        [
            {
                "params": params,
                "lr": head_lr if head else cfg.learning_rate,
                "weight_decay": 0.0 if flat else cfg.weight_decay,
            }
            for (head, flat), params in sorted(groups.items())
        ],
        lr=cfg.learning_rate,
    )


def train_epoch(
    model: Any,
    loaders: list[Any],
    streams: list[Stream],
    optimizer: Any,
    scheduler: Any,
    acc: Accelerator,
    cfg: RunConfig,
    epoch: int,
    seed: int,
    label: str,
) -> float:
    """One epoch over the sampling schedule; returns the mean training loss."""
    model.train()
    schedule = epoch_schedule([len(dl) for dl in loaders], cfg.sampling, cfg.temperature, seed)
    for dl in loaders:
        dl.set_epoch(epoch)  # the seedable sampler's order for this epoch, also after a resume
    iterators = [iter(dl) for dl in loaders]
    total, steps = torch.zeros((), device=acc.device), 0
    specs = model_specs(model)
    for s in track(schedule, description=label, enabled=acc.is_main_process):
        try:
            batch = next(iterators[s])
        except StopIteration:  # temperature/uniform sampling cycles a stream that ran out
            iterators[s] = iter(loaders[s])
            batch = next(iterators[s])
        inputs, labels = split_batch(batch)
        with acc.accumulate(model):
            with acc.autocast():
                logits = model(tasks=streams[s].task_names, **inputs)
            losses = [task_loss(specs[t].problem_type, logits[t], labels[t]) for t in streams[s].task_names]
            loss = torch.stack(losses).sum()  # the heads of one stream share this encoder pass
            acc.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        total += loss.detach().float()
        steps += 1
    for it, dl in zip(iterators, loaders, strict=True):  # release accelerate's dataloader bookkeeping
        it.close()
        dl.end()
    return float(acc.reduce(total, "mean").item()) / max(steps, 1)


def model_specs(model: Any) -> dict[str, HeadSpec]:
    return getattr(model, "module", model).specs


@torch.no_grad()
def evaluate(
    model: Any, loaders: list[tuple[Stream, Any]], acc: Accelerator, metrics: Registry[Any], label: str
) -> dict[str, dict[str, float | None]]:
    """Metrics per task on one split; predictions gathered over processes with gather_for_metrics."""
    model.eval()
    specs = model_specs(model)
    results = {}
    for stream, loader in loaders:
        preds: dict[str, list[np.ndarray]] = {t: [] for t in stream.task_names}
        refs: dict[str, list[np.ndarray]] = {t: [] for t in stream.task_names}
        for batch in track(loader, description=label, enabled=acc.is_main_process):
            inputs, labels = split_batch(batch)
            with acc.autocast():
                logits = model(tasks=stream.task_names, **inputs)
            batch_preds = {t: predictions(specs[t].problem_type, logits[t]) for t in stream.task_names}
            batch_preds, labels = acc.gather_for_metrics((batch_preds, labels))
            for t in stream.task_names:
                preds[t].append(batch_preds[t].cpu().numpy())
                refs[t].append(labels[t].cpu().numpy())
        for task in stream.tasks:
            results[task.name] = score(task, np.concatenate(preds[task.name]), np.concatenate(refs[task.name]), metrics)
    return results


def score(task: TaskSpec, preds: np.ndarray, refs: np.ndarray, metrics: Registry[Any]) -> dict[str, float | None]:
    """Every metric of the task over the labelled rows (None when no row is labelled)."""
    keep = ~np.isnan(refs) if refs.dtype.kind == "f" else (refs != MISSING_LABEL).reshape(len(refs), -1).all(axis=1)
    if not keep.any():
        return {m: None for m in task.metrics}
    return {m: metrics.get(m).fn(preds[keep], refs[keep]) for m in task.metrics}


def selection_score(record: dict[str, Any], tasks: Sequence[TaskSpec], metrics: Registry[Any]) -> float:
    """Mean primary dev metric over the job's tasks, signed so that higher is better."""
    values = []
    for task in tasks:
        value = record["dev"][task.name][task.metrics[0]]
        sign = 1.0 if metrics.get(task.metrics[0]).higher_is_better else -1.0
        values.append(sign * value if value is not None else -math.inf)
    return float(np.mean(values))


@dataclass(frozen=True)
class Job:
    """One training: ``kind`` is "stl" or "mtl"; STL is simply a job with one task."""

    kind: str
    tasks: tuple[str, ...]
    seed: int

    def describe(self) -> str:
        tasks = "+".join(self.tasks) if len(self.tasks) <= 3 else f"{len(self.tasks)} tasks"
        return f"{self.kind.upper()} {tasks} seed {self.seed}"

    def key(self, config_hash: str) -> str:
        text = json.dumps([self.kind, self.tasks, self.seed, config_hash])
        return f"{self.kind}-{self.seed}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def run_job(
    job: Job,
    tasks: Sequence[TaskSpec],
    metrics: Registry[Any],
    cfg: RunConfig,
    ctx: LoadContext,
    acc: Accelerator,
    job_dir: Path,
    resume: bool,
) -> dict[str, Any]:
    """Train one job to the end (or from its saved state) and return its final metrics record."""
    set_seed(job.seed)
    model, tokenizer = build_model(cfg.model, [HeadSpec.of(t) for t in tasks], cfg.pooling, cfg.dropout)
    data = prepare_data(tasks, tokenizer, cfg, ctx, acc)
    train_loaders = [train_loader(ds, s, tokenizer, cfg) for s, ds in zip(data.streams, data.train, strict=True)]
    eval_loaders = {
        split: [
            (s, DataLoader(ds, batch_size=cfg.eval_batch_size, collate_fn=Collator(tokenizer, s))) for s, ds in pairs
        ]
        for split, pairs in data.eval.items()
    }
    optimizer = _optimizer(model, cfg)
    from transformers import get_linear_schedule_with_warmup

    updates = math.ceil(sum(len(dl) for dl in train_loaders) / cfg.grad_accum_steps) * cfg.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * updates), updates)
    model, optimizer, scheduler, *train_loaders = acc.prepare(model, optimizer, scheduler, *train_loaders)
    eval_loaders = {k: [(s, acc.prepare(dl)) for s, dl in v] for k, v in eval_loaders.items()}
    history = _restore(acc, job_dir) if resume else []
    if history:
        log.info("resuming %s after epoch %d from %s", job.kind, len(history), job_dir / "state")
    for epoch in range(len(history), cfg.epochs):
        epoch_seed = job.seed * 10_007 + epoch  # each epoch's order and dropout, independent of a resume
        set_seed(epoch_seed)
        label = f"{job.describe()} epoch {epoch + 1}/{cfg.epochs}"
        loss = train_epoch(model, train_loaders, data.streams, optimizer, scheduler, acc, cfg, epoch, epoch_seed, label)
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss}
        for split, loaders in eval_loaders.items():
            record[split] = evaluate(model, loaders, acc, metrics, f"eval {split}")
        record["selection"] = selection_score(record, tasks, metrics)
        best_before = max((r["selection"] for r in history), default=-math.inf)
        history.append(record)
        if cfg.keep_best and (len(history) == 1 or record["selection"] > best_before):  # the epoch _final picks
            acc.save_model(acc.unwrap_model(model), job_dir / "best")
        _checkpoint(acc, job_dir, history)
    acc.free_memory()
    return _final(job, tasks, history, data.fingerprints)


def _final(
    job: Job, tasks: Sequence[TaskSpec], history: list[dict[str, Any]], prints: dict[str, str]
) -> dict[str, Any]:
    best = max(history, key=lambda r: r["selection"])
    split = "test" if "test" in best else "dev"
    return {
        "kind": job.kind,
        "tasks": list(job.tasks),
        "seed": job.seed,
        "best_epoch": best["epoch"],
        "split": split,
        "metrics": {t.name: best[split][t.name] for t in tasks},
        "dev": {t.name: best["dev"][t.name] for t in tasks},
        "history": history,
        "data_fingerprints": prints,
    }


def _checkpoint(acc: Accelerator, job_dir: Path, history: list[dict[str, Any]]) -> None:
    """Save the accelerate state and history together; a kill leaves the previous state intact."""
    tmp, state = job_dir / "state.tmp", job_dir / "state"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        (tmp / "history.json").write_text(json.dumps(history, indent=1))
        if state.exists():
            shutil.rmtree(state)
        tmp.rename(state)
    acc.wait_for_everyone()


def _restore(acc: Accelerator, job_dir: Path) -> list[dict[str, Any]]:
    state = job_dir / "state"
    if not (state / "history.json").exists():
        return []
    try:
        acc.load_state(str(state))
    except Exception as exc:  # noqa: BLE001 -- a damaged or mismatched state is the user's to clear
        raise RunError(
            f"cannot resume from {state}: {type(exc).__name__}: {exc}; delete that folder to restart the job"
        ) from None
    return json.loads((state / "history.json").read_text())
