"""One training job on accelerate: STL is a job with one task, MTL a job with several.

The same code runs on one CPU, several processes (``torchrun``/``accelerate launch``) or
many GPUs. Per epoch: train on the sampling schedule, evaluate dev (and labelled test), keep
the best epoch by the mean primary dev metric (its weights in memory, written to ``best/`` once
at the end), and save the state for ``--resume`` at the cadence of ``harness.training.resume``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader

from harness.api import MISSING_LABEL, LoadContext, ProblemType, TaskSpec
from harness.core.config import RunConfig
from harness.core.registry import Registry
from harness.core.trackers import epoch_values, tracker_run
from harness.data.streams import (
    Collator,
    Stream,
    TokenizedRows,
    content_fingerprint,
    is_labelled,
    make_streams,
    split_batch,
    stream_split,
    tokenize,
)
from harness.errors import RunError
from harness.training.model import HeadSpec, build_model, task_loss_sum
from harness.training.observers import StepInfo, StepObserver
from harness.training.progress import JobProgress
from harness.training.resume import BestWeights, StateCadence, restore_state, save_state
from harness.training.sampling import LengthGroupedSampler, epoch_schedule
from harness.training.saved import model_info, save_best
from harness.training.thresholds import sigmoid, tune_thresholds

log = logging.getLogger("harness")


@dataclass(frozen=True)
class JobData:
    streams: list[Stream]
    train: list[Any]  # tokenized datasets, one per stream
    eval: dict[str, list[tuple[Stream, Any]]]  # split -> (stream, tokenized dataset)
    fingerprints: dict[str, str]  # "<stream>/<split>" -> content fingerprint (streams.content_fingerprint)


def prepare_data(
    tasks: Sequence[TaskSpec], tokenizer: Any, cfg: RunConfig, ctx: LoadContext, acc: Accelerator
) -> JobData:
    streams = make_streams(tasks)
    train, evals, prints = [], {"dev": [], "test": []}, {}  # type: ignore[var-annotated]
    with acc.main_process_first():
        for stream in streams:
            for split in ("train", "dev", "test"):
                dataset = stream_split(stream, split, ctx, cfg.example_limit(split)[1])
                if dataset is None:
                    continue
                prints[f"{stream.key}/{split}"] = content_fingerprint(dataset)
                tokenized = tokenize(dataset, stream, tokenizer, cfg.max_length, acc.is_main_process)
                (train.append(tokenized) if split == "train" else evals[split].append((stream, tokenized)))
    return JobData(streams, train, {k: v for k, v in evals.items() if v}, prints)


def train_loader(dataset: Any, stream: Stream, tokenizer: Any, cfg: RunConfig) -> DataLoader:
    """Shuffled batches; with ``group_by_length``, of similar lengths (less padding, same examples)."""
    rows: Any = TokenizedRows(dataset)  # numpy views of the memory-mapped Arrow buffers: a batch costs no conversion
    collate = Collator(tokenizer, stream)
    if not cfg.group_by_length:
        return DataLoader(rows, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate)
    # Draws its permutations from the global RNG, which is seeded per epoch identically on every rank.
    sampler = LengthGroupedSampler(token_lengths(dataset), cfg.batch_size)
    return DataLoader(rows, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate)


def token_lengths(dataset: Any) -> list[int]:
    """Tokens per row ([rows] ints) of a tokenized dataset, counted by Arrow on its (memory-mapped)
    ``input_ids`` column: the token lists never become Python objects."""
    import pyarrow.compute as pc

    return pc.list_value_length(dataset.with_format("arrow")["input_ids"]).to_pylist()


def _optimizer(model: torch.nn.Module, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW; no decay on biases and LayerNorm; heads at ``head_learning_rate`` when set.

    The fused kernel where torch has one for the parameters' device (CPU, CUDA, ...): the same
    update rule in one pass over each tensor instead of about ten elementwise kernels per
    parameter (on this 2-core CPU, MiniLM's 22.7 M parameters: ~35 ms a step instead of ~300).
    """
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        key = (name.startswith("heads."), param.ndim < 2 or "LayerNorm" in name)
        groups.setdefault(key, []).append(param)
    head_lr = cfg.head_learning_rate or cfg.learning_rate
    param_groups = [
        {
            "params": params,
            "lr": head_lr if head else cfg.learning_rate,
            "weight_decay": 0.0 if flat else cfg.weight_decay,
        }
        for (head, flat), params in sorted(groups.items())
    ]
    try:
        return torch.optim.AdamW(param_groups, lr=cfg.learning_rate, fused=True)
    except RuntimeError:  # a device or dtype without the fused kernel: the per-tensor implementation
        return torch.optim.AdamW(param_groups, lr=cfg.learning_rate)


def accumulation_windows(steps: int, accum: int) -> list[int]:
    """Micro-steps per optimizer step over one epoch: ``accum`` each, the last window shorter.

    An epoch always ends with an optimizer step (no gradient is carried into the next epoch,
    so a checkpoint at the epoch's end holds everything), and the number of optimizer steps
    per epoch is ``ceil(steps / accum)``: the length the learning-rate schedule is sized for.
    """
    full, rest = divmod(steps, accum)
    return [accum] * full + ([rest] if rest else [])


def padding_mask(batch_rows: int, dataset_rows: int, batch_size: int, acc: Accelerator) -> torch.Tensor | None:
    """Rows of this process's share of a *last* global batch that accelerate padded (True = padding).

    With ``split_batches`` and ``even_batches``, a last global batch of r < batch_size rows is
    filled up with rows from the start of the epoch and split across the processes; process p
    holds global positions p * batch_rows ... Those at or beyond r are repeats: they must not
    count in the loss, or N processes would train on other rows than one process does.
    """
    remainder = dataset_rows % batch_size
    if remainder == 0 or acc.num_processes == 1:
        return None
    positions = torch.arange(batch_rows) + acc.process_index * batch_rows
    return positions >= remainder


def _mask_labels(labels: dict[str, torch.Tensor], mask: torch.Tensor, specs: dict[str, HeadSpec]) -> None:
    for name, values in labels.items():
        fill = math.nan if specs[name].problem_type is ProblemType.REGRESSION else MISSING_LABEL
        values[mask.to(values.device)] = fill


def batch_loss(
    logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], specs: dict[str, HeadSpec], acc: Accelerator
) -> torch.Tensor:
    """Sum over the stream's heads of each head's mean loss over the *global* batch's labelled rows.

    Each process sums its rows' losses and divides by the labelled rows of the whole batch
    (all-reduced once per step), times the process count because DDP averages gradients: the
    gradient then equals the one-process gradient of the same global batch, whatever the
    split of labelled rows between processes.
    """
    names = list(logits)
    sums, counts = zip(*(task_loss_sum(specs[t].problem_type, logits[t], labels[t]) for t in names), strict=True)
    total_counts = acc.reduce(torch.stack(counts).detach(), "sum") if acc.num_processes > 1 else torch.stack(counts)
    scale = acc.num_processes / total_counts.clamp(min=1.0)
    return (torch.stack(sums) * scale).sum()


@dataclass
class Training:
    """The prepared objects one job trains with, epoch after epoch."""

    model: Any  # prepared (DDP-wrapped under several processes)
    loaders: list[Any]  # prepared training loaders, one per stream
    streams: list[Stream]
    optimizer: Any
    scheduler: Any
    acc: Accelerator
    cfg: RunConfig
    progress: JobProgress = field(default_factory=JobProgress)
    observers: Sequence[StepObserver] = ()  # called after every optimizer step (harness.training.observers)
    track: bool = False  # log each optimizer step's loss and learning rate to acc's trackers


class Diverged(RunError):
    """The training loss became NaN or infinite: the job cannot give a result.

    ``epoch`` (1-based), ``step``: the epoch's first optimizer step (1-based, of ``steps``) whose
    loss was not finite, and that ``loss`` (NaN or ±inf).
    """

    def __init__(self, epoch: int, step: int, steps: int, loss: float) -> None:
        self.epoch, self.step, self.steps, self.loss = epoch, step, steps, loss
        shown = "nan" if math.isnan(loss) else f"{loss:+}"
        super().__init__(
            f"the training loss is {shown} at optimizer step {(epoch - 1) * steps + step} "
            f"(step {step} of {steps} in epoch {epoch}): diverged; lower learning_rate, or check the labels "
            "(a regression target too large to square in float32?)"
        )


def train_epoch(training: Training, epoch: int, seed: int) -> float:
    """One epoch over the sampling schedule; returns the mean training loss per micro-step.

    ``seed`` draws the epoch's stream schedule; the loaders' order comes from ``epoch``. Raises
    ``Diverged`` at the epoch's end when an optimizer step's loss was NaN or infinite (tracked
    on the device, so finite steps cost no synchronisation).
    """
    model, loaders, streams, acc, cfg = training.model, training.loaders, training.streams, training.acc, training.cfg
    optimizer, scheduler, progress, observers = (
        training.optimizer,
        training.scheduler,
        training.progress,
        training.observers,
    )
    model.train()
    stepper = stepping_optimizer(optimizer, acc)
    schedule = epoch_schedule([len(dl) for dl in loaders], cfg.sampling, cfg.temperature, seed)
    for dl in loaders:
        dl.set_epoch(epoch)  # the seedable sampler's order for this epoch, also after a resume
    iterators = [iter(dl) for dl in loaders]
    consumed = [0] * len(loaders)
    total = torch.zeros((), device=acc.device)
    specs = model_specs(model)
    steps = iter(schedule)
    progress.phase(f"epoch {epoch + 1}/{cfg.epochs} train", len(schedule))
    windows = accumulation_windows(len(schedule), cfg.grad_accum_steps)
    first_bad = torch.zeros((), dtype=torch.long, device=acc.device)  # first step with a non-finite loss; 0 = none
    bad_loss = torch.zeros((), device=acc.device)
    for update, window in enumerate(windows, 1):
        window_loss = torch.zeros((), device=acc.device)
        for micro in range(window):
            s = next(steps)
            try:
                batch = next(iterators[s])
            except StopIteration:  # temperature/uniform sampling cycles a stream that ran out
                iterators[s] = iter(loaders[s])
                batch = next(iterators[s])
            consumed[s] += 1
            inputs, labels = split_batch(batch)
            rows = next(iter(labels.values())).shape[0]  # this process's share of the global batch
            if consumed[s] % len(loaders[s]) == 0:  # the stream's last batch: drop accelerate's padding
                mask = padding_mask(rows, len(loaders[s].dataset), cfg.batch_size, acc)
                if mask is not None:
                    _mask_labels(labels, mask, specs)
            sync = micro == window - 1
            with contextlib.nullcontext() if sync else acc.no_sync(model):  # all-reduce once per optimizer step
                with acc.autocast():
                    logits = model(tasks=streams[s].task_names, **inputs)
                loss = batch_loss(logits, labels, specs, acc)
                acc.backward(loss / window)  # the optimizer step's gradient: mean over its micro-steps
            total += loss.detach().float()
            window_loss += loss.detach().float()
            progress.advance(rows=rows * acc.num_processes, train=True)
        new_bad = (first_bad == 0) & ~torch.isfinite(window_loss)
        first_bad = torch.where(new_bad, update, first_bad)
        bad_loss = torch.where(new_bad, window_loss / window, bad_loss)
        lr = scheduler.get_last_lr()[0]  # the rate of this step (the encoder's parameter groups)
        stepper.step()
        scheduler.step()
        stepper.zero_grad()
        if training.track:
            _log_step(acc, epoch * len(windows) + update, window_loss / window, lr)
        if observers:
            info = StepInfo(model, acc, epoch * len(windows) + update, epoch, scheduler.get_last_lr()[0])
            for observer in observers:
                observer.after_step(info)
    for it, dl in zip(iterators, loaders, strict=True):  # release accelerate's dataloader bookkeeping
        it.close()
        dl.end()
    mean = float(acc.reduce(total, "mean").item()) / max(len(schedule), 1)
    if not math.isfinite(mean):  # every rank sees the same reduced mean: all of them raise
        step, value = _first_bad_step(first_bad, bad_loss, acc)
        raise Diverged(epoch + 1, step, len(windows), value)
    return mean


def _first_bad_step(first_bad: torch.Tensor, bad_loss: torch.Tensor, acc: Accelerator) -> tuple[int, float]:
    """The earliest non-finite step over the processes (each tracked its own share of the loss), and its loss."""
    pairs = torch.stack([first_bad.to(bad_loss.dtype), bad_loss]).reshape(1, 2)
    if acc.num_processes > 1:
        pairs = acc.gather(pairs)  # [processes, 2]
    seen = [(int(s), float(v)) for s, v in pairs.tolist() if s > 0]
    return min(seen) if seen else (0, math.nan)  # 0: a non-finite sum of finite step losses (overflow)


def stepping_optimizer(optimizer: Any, acc: Accelerator) -> Any:
    """What to call ``step()`` and ``zero_grad()`` on: the prepared optimizer, or the torch optimizer it wraps
    when accelerate's wrapper would only delegate to it.

    accelerate's ``AcceleratedOptimizer.step`` looks up the optional ``lomo_optim`` package with
    an uncached ``importlib.util.find_spec`` on every call (~1.5 ms of file-system lookups here,
    some 4 % of a tiny-model step) and its ``zero_grad`` inspects the wrapped method's signature;
    without a gradient scaler (fp16), off XLA and with ``sync_gradients`` (the runner never defers
    a step to accelerate) both then call the wrapped optimizer's method, with the same arguments.
    Anything else (a subclass such as DeepSpeed's wrapper, a scaler, XLA) keeps the wrapper.
    """
    from accelerate.optimizer import AcceleratedOptimizer
    from accelerate.utils import DistributedType

    direct = (
        type(optimizer).step is AcceleratedOptimizer.step
        and type(optimizer).zero_grad is AcceleratedOptimizer.zero_grad
        and acc.scaler is None
        and acc.distributed_type != DistributedType.XLA
        and acc.sync_gradients
    )
    return optimizer.optimizer if direct else optimizer


def _log_step(acc: Accelerator, step: int, loss: torch.Tensor, lr: float) -> None:
    """One optimizer step's mean loss over its micro-steps (over all processes: one all-reduce) and rate."""
    if acc.num_processes > 1:
        loss = acc.reduce(loss, "mean")
    acc.log({"train/loss": float(loss.item()), "train/learning_rate": float(lr)}, step=step)


def model_specs(model: Any) -> dict[str, HeadSpec]:
    return getattr(model, "module", model).specs


@torch.no_grad()
def collect(
    model: Any, loaders: list[tuple[Stream, Any]], acc: Accelerator, progress: JobProgress, label: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(raw outputs, references) per task on one split, gathered over processes (gather_for_metrics).

    Raw outputs are logits ([rows, classes]; multi-label [rows, labels]) or values ([rows]) for
    regression; accelerate's padding of the last batch is dropped by gather_for_metrics.
    """
    model.eval()
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    progress.phase(label, sum(len(dl) for _, dl in loaders))
    for stream, loader in loaders:
        outputs: dict[str, list[np.ndarray]] = {t: [] for t in stream.task_names}
        refs: dict[str, list[np.ndarray]] = {t: [] for t in stream.task_names}
        for batch in loader:
            inputs, labels = split_batch(batch)
            with acc.autocast():
                logits = model(tasks=stream.task_names, **inputs)
            logits = {t: v.float() for t, v in logits.items()}
            logits, labels = acc.gather_for_metrics((logits, labels))
            for t in stream.task_names:
                outputs[t].append(logits[t].cpu().numpy())
                refs[t].append(labels[t].cpu().numpy())
            progress.advance(rows=next(iter(labels.values())).shape[0], train=False)
        for t in stream.task_names:
            out[t] = (np.concatenate(outputs[t]), np.concatenate(refs[t]))
    return out


def evaluate(
    model: Any,
    eval_loaders: dict[str, list[tuple[Stream, Any]]],
    tasks: Sequence[TaskSpec],
    acc: Accelerator,
    metrics: Registry[Any],
    cfg: RunConfig,
    progress: JobProgress,
) -> dict[str, Any]:
    """Metrics per split and task; multi-label decision thresholds fixed (0.5) or tuned on dev.

    Returns ``{split: {task: {metric: value | None}}, "thresholds": {task: [per label]}}``; a
    task with no labelled row in a split scores None there.
    """
    outputs = {split: collect(model, pairs, acc, progress, f"eval {split}") for split, pairs in eval_loaders.items()}
    thresholds: dict[str, list[float]] = {}
    for task in tasks:
        if task.problem_type is ProblemType.MULTI_LABEL:
            logits, refs = outputs["dev"][task.name]
            thresholds[task.name] = (
                tune_thresholds(sigmoid(logits), refs).tolist()
                if cfg.multilabel_threshold == "tuned"
                else [0.5] * task.num_outputs
            )
    record: dict[str, Any] = {}
    for split, per_task in outputs.items():
        record[split] = {}
        for task in tasks:
            if task.name in per_task:
                raw, refs = per_task[task.name]
                record[split][task.name] = score(task, decide(task, raw, thresholds.get(task.name)), refs, metrics)
    if thresholds:
        record["thresholds"] = thresholds
    return record


def decide(task: TaskSpec, outputs: np.ndarray, thresholds: list[float] | None) -> np.ndarray:
    """Predictions from raw outputs: argmax, per-label probability > threshold, or the value."""
    if task.problem_type is ProblemType.SINGLE_LABEL:
        return outputs.argmax(axis=-1)
    if task.problem_type is ProblemType.MULTI_LABEL:
        return (sigmoid(outputs) > np.asarray(thresholds if thresholds is not None else 0.5)).astype(np.int64)
    return outputs.reshape(len(outputs))


def score(task: TaskSpec, preds: np.ndarray, refs: np.ndarray, metrics: Registry[Any]) -> dict[str, float | None]:
    """Every metric of the task over the labelled rows (None when no row is labelled)."""
    keep = is_labelled(task, refs)
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
class TrainSetup:
    """What one training needs besides its folder: tasks, metric registry, config, data, accelerator."""

    kind: str  # "stl" or "mtl" (for messages and the result record)
    tasks: Sequence[TaskSpec]
    seed: int
    metrics: Registry[Any]
    cfg: RunConfig
    ctx: LoadContext
    acc: Accelerator

    def describe(self) -> str:
        names = "+".join(t.name for t in self.tasks) if len(self.tasks) <= 3 else f"{len(self.tasks)} tasks"
        return f"{self.kind.upper()} {names} seed {self.seed}"


@dataclass
class Trained:
    """A finished training: its result record (JSON-ready) and what later measurements need."""

    record: dict[str, Any]
    model: Any  # the prepared model, holding the selected (best) epoch's weights when keep_best
    tokenizer: Any
    train_seconds: float
    train_examples: int = 0  # training rows seen in this session's epochs (all processes together)


@dataclass
class PreparedJob:
    """A job ready to train: what ``prepare_training`` builds and ``run_job`` trains epoch after epoch."""

    training: Training
    eval_loaders: dict[str, list[tuple[Stream, Any]]]  # split -> (stream, prepared loader)
    data: JobData
    tokenizer: Any
    steps: int  # optimizer steps per epoch


def prepare_training(
    setup: TrainSetup, progress: JobProgress | None = None, observers: Sequence[StepObserver] = ()
) -> PreparedJob:
    """Seed, build the model, data, loaders, optimizer and schedule, and ``acc.prepare`` them.

    Exactly what ``run_job`` trains with (a benchmark times ``train_epoch`` on its ``training``).
    The learning-rate schedule spans ``cfg.epochs`` epochs of ``steps`` optimizer steps.
    """
    acc, cfg, tasks = setup.acc, setup.cfg, setup.tasks
    set_seed(setup.seed)
    model, tokenizer = build_model(cfg.model, [HeadSpec.of(t) for t in tasks], cfg.pooling, cfg.dropout)
    data = prepare_data(tasks, tokenizer, cfg, setup.ctx, acc)
    train_loaders = [train_loader(ds, s, tokenizer, cfg) for s, ds in zip(data.streams, data.train, strict=True)]
    eval_loaders = {
        split: [
            (s, DataLoader(ds, batch_size=cfg.eval_batch_size, collate_fn=Collator(tokenizer, s))) for s, ds in pairs
        ]
        for split, pairs in data.eval.items()
    }
    optimizer = _optimizer(model, cfg)
    micro_steps = sum(len(dl) for dl in train_loaders)  # per epoch, whatever the sampling strategy
    updates = len(accumulation_windows(micro_steps, cfg.grad_accum_steps)) * cfg.epochs  # optimizer steps taken
    scheduler = linear_schedule(optimizer, int(cfg.warmup_ratio * updates), updates)
    if acc.ddp_handler is not None:  # MTL over several streams leaves the other streams' heads idle in a step
        acc.ddp_handler.find_unused_parameters = len(data.streams) > 1
    model, optimizer, scheduler, *train_loaders = acc.prepare(model, optimizer, scheduler, *train_loaders)
    eval_loaders = {k: [(s, acc.prepare(dl)) for s, dl in v] for k, v in eval_loaders.items()}
    training = Training(
        model, train_loaders, data.streams, optimizer, scheduler, acc, cfg, progress or JobProgress(), observers
    )
    return PreparedJob(training, eval_loaders, data, tokenizer, updates // cfg.epochs)


def run_job(
    setup: TrainSetup,
    job_dir: Path,
    resume: bool = False,
    progress: JobProgress | None = None,
    observers: Sequence[StepObserver] = (),
) -> Trained:
    """Train one job to the end (or on from its saved state) and return its final record.

    ``observers`` are called after every optimizer step; their state is saved with the resume
    state and restored on resume, and lands in the record under ``observations``. With
    ``keep_best``, the selected epoch's weights are written to ``job_dir/best`` once, at the end.
    The resume state (``job_dir/state``) is left for the caller to delete once the job's results
    are kept (``harness.training.resume.discard_state``).
    When ``setup.acc`` has trackers, the job is their run ``job_dir.name``.
    """
    acc, cfg = setup.acc, setup.cfg
    progress = progress or JobProgress()
    job = prepare_training(setup, progress, observers)
    training, steps = job.training, job.steps
    model = training.model
    history, best = restore_state(acc, job_dir, model, observers, cfg.keep_best) if resume else ([], BestWeights())
    if history:
        log.info("resuming %s after epoch %d from %s", setup.describe(), len(history), job_dir / "state")
    progress.resume(len(history))
    with tracker_run(acc, job_dir.name, first_step=len(history) * steps + 1) as track:
        training.track = track
        train_seconds, train_examples = _train_epochs(setup, training, job.eval_loaders, history, job_dir, steps, best)
    result = _final(setup, history, job.data.fingerprints)
    if observers:
        result["observations"] = {o.name: o.state() for o in observers}
    if cfg.keep_best:
        assert best.epoch == result["best_epoch"], "the kept weights are the selected epoch's"
        best.load_into(model, acc)  # later measurements use the selected model
        record = history[best.epoch - 1]
        info = model_info(setup.tasks, cfg, job=job_dir.name, kind=setup.kind, seed=setup.seed, record=record)
        save_best(acc, model, job_dir / "best", info)  # self-describing, written once: harness predict reads it
    return Trained(result, model, job.tokenizer, train_seconds, train_examples)


def _train_epochs(
    setup: TrainSetup,
    training: Training,
    eval_loaders: dict[str, list[tuple[Stream, Any]]],
    history: list[dict[str, Any]],
    job_dir: Path,
    steps: int,
    best: BestWeights,
) -> tuple[float, int]:
    """Train the epochs after ``history`` (appended to); the seconds spent training and the
    training rows seen (every stream's loader once per epoch).

    With ``keep_best``, ``best`` follows the selected epoch (a copy of its weights while another
    epoch follows). The resume state is saved after an epoch that another follows, at most every
    ``state_every_minutes`` (``StateCadence``).

    With ``training.track``, each epoch's dev metrics and mean loss are logged at its last
    optimizer step (``steps`` per epoch).
    """
    import time

    acc, cfg, tasks, model = training.acc, training.cfg, setup.tasks, training.model
    metric_names = {t.name: list(t.metrics) for t in tasks}
    train_seconds, train_examples = 0.0, 0
    epoch_rows = sum(len(dl.dataset) for dl in training.loaders)
    cadence = StateCadence(cfg.state_every_minutes)
    for epoch in range(len(history), cfg.epochs):
        if stopped_early(history, cfg.patience):
            log.info("%s: no better dev score in %d epoch(s): stopping early", setup.describe(), cfg.patience)
            break
        epoch_seed = setup.seed * 10_007 + epoch  # each epoch's order and dropout, independent of a resume
        set_seed(epoch_seed)
        start = time.perf_counter()
        try:
            loss = train_epoch(training, epoch, epoch_seed)
        except Diverged as exc:  # a diverged job is a failed job, not a result (no state of it is saved)
            raise RunError(f"{setup.describe()}: {exc}") from None
        train_seconds += time.perf_counter() - start
        train_examples += epoch_rows
        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss}
        record.update(evaluate(model, eval_loaders, tasks, acc, setup.metrics, cfg, training.progress))
        record["selection"] = selection_score(record, tasks, setup.metrics)
        best_before = max((r["selection"] for r in history), default=-math.inf)
        history.append(record)
        if training.track:
            acc.log(epoch_values(record, metric_names), step=(epoch + 1) * steps)
        more = epoch + 1 < cfg.epochs and not stopped_early(history, cfg.patience)
        if cfg.keep_best and (len(history) == 1 or record["selection"] > best_before):  # the epoch _final picks
            best.keep(model, acc, len(history), copy=more)  # the next epoch changes the weights: keep a copy
        if more and cadence.due(acc):
            save_state(acc, job_dir, history, training.observers, best)
            cadence.saved()
    return train_seconds, train_examples


def linear_schedule(optimizer: Any, warmup: int, total: int) -> Any:
    """transformers' linear warm-up and decay to zero over ``total`` optimizer steps."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup, total)


def stopped_early(history: list[dict[str, Any]], patience: int) -> bool:
    """True when the last ``patience`` epochs brought no better selection score (0 = never stop).

    Decided from the saved history alone, so a resumed job stops where an uninterrupted one does.
    """
    if patience <= 0 or not history:
        return False
    best = max(range(len(history)), key=lambda i: history[i]["selection"])  # first best epoch
    return len(history) - 1 - best >= patience


def reported_split(record: dict[str, Any], task: TaskSpec) -> str:
    """ "test" when the task has labelled test rows in this job, else "dev"."""
    test = record.get("test", {}).get(task.name)
    return "test" if test is not None and test[task.metrics[0]] is not None else "dev"


def _final(setup: TrainSetup, history: list[dict[str, Any]], prints: dict[str, str]) -> dict[str, Any]:
    tasks, cfg = setup.tasks, setup.cfg
    best = max(history, key=lambda r: r["selection"])
    splits = {t.name: reported_split(best, t) for t in tasks}
    result = {
        "kind": setup.kind,
        "tasks": [t.name for t in tasks],
        "seed": setup.seed,
        "best_epoch": best["epoch"],
        "epochs_trained": len(history),
        "splits": splits,
        "metrics": {t.name: best[splits[t.name]][t.name] for t in tasks},
        "dev": {t.name: best["dev"][t.name] for t in tasks},
        "history": history,
        "data_fingerprints": prints,
    }
    if "thresholds" in best:
        result["thresholds"] = {"mode": cfg.multilabel_threshold, "values": best["thresholds"]}
    return result
