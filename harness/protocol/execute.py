"""``execute(spec, job_dir) -> JobResult``: run one job from its spec alone, in any process.

As in accelerate's examples, the job builds what it needs itself: the plugin registries
(cached per process), the ``Accelerator``, the data, the model. An executor
(``harness.protocol.executors``) only decides where and when ``execute`` runs. Every executor
asks ``finished_job`` whether a job is done already (in the run directory or the job store;
when not, its store key is claimed), and hands a finished job's result to ``publish_job`` and a
failed job's error to ``record_failure`` (both release the claim; ``release_job`` gives up one
whose job will not run): the one place each of those decisions is made, in the main process only.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.errors import ConfigError
from harness.protocol.jobstore import JobStore
from harness.protocol.plan import JobSpec, PluginSpec
from harness.protocol.results import JobResult

log = logging.getLogger("harness")

_REGISTRIES: dict[PluginSpec, Any] = {}

FEATURES_FILE = "features.npy"
RESULT_FILE, ERROR_FILE = "result.json", "error.json"


def finished_job(job: JobSpec, job_dir: Path, store: JobStore | None, *, wait: bool = True) -> JobResult | None:
    """The job's result when it is finished: in the run directory (``job_dir/result.json``), or in
    the job store (then linked into ``job_dir``, with ``reused.json`` saying where from); else None.

    On None with a store, the main process holds the job's store key until ``publish_job`` (or
    ``release_job``, or ``record_failure`` when the job fails): another run that needs the job waits
    for it instead of training it too. While another process holds the key this waits for it; with
    ``wait=False`` it raises ``JobInProgress`` instead (an executor that holds other keys must not
    wait: two runs claiming in opposite orders would wait for each other). Under a distributed
    launch every rank calls it; the main process decides and broadcasts, so all ranks agree.
    Only the main process of a run touches the store: worker processes never call this.
    """
    from accelerate import PartialState

    from harness.errors import HarnessError

    state = PartialState()
    outcome: tuple[str, Any] = ("miss", None)
    if state.is_main_process:  # the main process alone looks: it may be linking the entry in right now
        try:
            found = _look_up(job, job_dir, store, wait)
            outcome = ("miss", None) if found is None else ("found", found.to_json())
        except HarnessError as exc:  # JobInProgress, a damaged result.json: every rank raises it
            outcome = ("error", exc)
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [outcome]
        broadcast_object_list(box, from_process=0)
        outcome = box[0]
    if outcome[0] == "error":
        raise outcome[1]
    return None if outcome[0] == "miss" else JobResult.from_json(outcome[1], job_dir / RESULT_FILE)


def _look_up(job: JobSpec, job_dir: Path, store: JobStore | None, wait: bool) -> JobResult | None:
    done = job_dir / RESULT_FILE
    if done.exists():
        return JobResult.read(done)
    found = None if store is None else store.lookup(job, job_dir, wait=wait)
    if found is not None:
        (job_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's failure: another run finished it
    return found


def publish_job(job: JobSpec, job_dir: Path, result: JobResult, store: JobStore | None) -> None:
    """Record a finished job: ``job_dir/result.json`` (atomic; an earlier failure's ``error.json`` is
    removed), and the job store's entry (its files copied from ``job_dir``; the key released).

    Call it on every rank of a distributed launch: only the main process writes; the caller
    synchronises the ranks afterwards if it needs to. With worker processes, the main process
    calls it with what the worker returned: the worker wrote the job's files (``features.npy``)
    into ``job_dir``, on a file system the main process sees.
    """
    from accelerate import PartialState

    from harness.protocol import rundir

    if not PartialState().is_main_process:
        return
    try:
        rundir.write_json(job_dir / RESULT_FILE, result.to_json())
        (job_dir / ERROR_FILE).unlink(missing_ok=True)
    except BaseException:
        release_job(job, store)
        raise
    if store is not None:
        store.publish(job, job_dir, result)  # releases the key, whether or not it could store the entry


def release_job(job: JobSpec, store: JobStore | None) -> None:
    """Give up the store key ``finished_job`` claimed for a job that will not be published (no-op
    without a claim): another run may then train it."""
    if store is not None:
        store.release(job)


def record_failure(job: JobSpec, job_dir: Path, error: str, trace: str, store: JobStore | None) -> Path:
    """Record that ``job`` failed: its store key released, and ``job_dir/error.json`` with the one-line
    ``error`` and the traceback.

    A failed job has no ``result.json`` (and no store entry), so ``--resume`` runs it again.
    Returns the file written. Main process only.
    """
    from harness.protocol import rundir

    release_job(job, store)
    path = job_dir / ERROR_FILE
    info = {"job": job.key(), "describe": job.describe(), "error": error, "traceback": trace}
    rundir.write_json(path, {**info, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return path


def remember_registries(plugins: PluginSpec, registries: Any) -> None:
    """Reuse ``registries`` (already built by the caller) for jobs of this process with ``plugins``."""
    _REGISTRIES[plugins] = registries


def registries_for(plugins: PluginSpec) -> Any:
    """The frozen registries of ``plugins``, built once per process."""
    if plugins not in _REGISTRIES:
        import os

        from harness.core.plugins import build_registries, new_manager

        extra: list[tuple[str, object]] = []
        if plugins.tasks_dir is not None:
            from harness.data.taskdir import TaskDirPlugin, plugin_name

            extra.append((plugin_name(Path(plugins.tasks_dir)), TaskDirPlugin(Path(plugins.tasks_dir))))
        if plugins.modules:
            os.environ.setdefault("HARNESS_PLUGIN_MODULES", plugins.modules)
        manager = new_manager(load=plugins.wanted, extra=extra)
        _REGISTRIES[plugins] = build_registries(manager)
    return _REGISTRIES[plugins]


def make_accelerator(cfg: RunConfig, tracking_dir: Path | None = None) -> Any:
    """The job's Accelerator: global batches split over processes, seedable sampler, DDP handler.

    With ``tracking_dir`` and ``cfg.report_to``, it logs to those trackers there (the caller
    opens a tracker run: ``harness.core.trackers.tracker_run``). Raises ``ConfigError`` when a
    batch size is not a multiple of the process count, or a tracker's package is missing.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs

    from harness.core.trackers import accelerator_kwargs

    acc = Accelerator(
        mixed_precision="bf16" if cfg.bf16 else "no",
        # split_batches: batch_size is global, so N processes see the same batches as one; the
        # seedable sampler orders epoch e by (job seed + e) alike on one process or many.
        # Gradient accumulation is the runner's (windows that end with each epoch, no_sync).
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True),
        # find_unused_parameters is set per job by the runner (only MTL over several streams needs it).
        kwargs_handlers=[DistributedDataParallelKwargs()],
        **accelerator_kwargs(cfg.report_to, tracking_dir),
    )
    for size, name in ((cfg.batch_size, "batch_size"), (cfg.eval_batch_size, "eval_batch_size")):
        if size % acc.num_processes:
            raise ConfigError(f"{name}={size} must be a multiple of the {acc.num_processes} processes")
    return acc


def execute(
    spec: JobSpec,
    job_dir: Path,
    *,
    resume: bool = False,
    progress: Any = None,
    registries: Any = None,
    tracking_dir: Path | None = None,
) -> JobResult:
    """Run ``spec`` in ``job_dir`` (created) and return its result; ``job_dir/result.json`` is
    written by the caller. ``resume`` continues from ``job_dir/state``. With ``tracking_dir``, a
    training job reports to ``spec.config.report_to`` there, as the tracker run ``job_dir.name``.
    Runs on every process of a distributed launch (all ranks call it with the same spec)."""
    from harness.training.progress import JobProgress

    registries = registries if registries is not None else registries_for(spec.plugins)
    acc = make_accelerator(spec.config, tracking_dir)
    tasks = [registries.tasks.get(name) for name in spec.tasks]
    progress = progress or JobProgress()
    start = time.perf_counter()
    if acc.device.type == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(acc.device)
    if spec.kind == "init":
        result = _run_init(spec, tasks, registries, acc, job_dir, progress)
    else:
        result = _run_training(spec, tasks, registries, acc, job_dir, resume, progress)
    acc.free_memory()
    values = {
        **result,
        "seconds": time.perf_counter() - start,
        "processes": acc.num_processes,
        "device": str(acc.device),
        **peak_memory(acc.device),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    return JobResult(**values)


def peak_memory(device: Any) -> dict[str, Any]:
    """This process's peak memory in MiB and what it measures.

    On CUDA: ``torch.cuda.max_memory_allocated`` since the job started (tensors only, not the
    caching allocator's reserve). Elsewhere: the process's peak resident set size
    (``peak_rss_mb``), a high-water mark since the process started, so later jobs of one process
    report at least the earlier jobs' peak.
    """
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "memory": "cuda_max_allocated"}
    peak = peak_rss_mb()
    return {"peak_memory_mb": peak, "memory": "process_max_rss" if peak is not None else ""}


def peak_rss_mb() -> float | None:
    """This process's peak resident set size in MiB: ``VmHWM`` of ``/proc/self/status`` on Linux,
    else ``resource.getrusage(RUSAGE_SELF).ru_maxrss``; None where neither exists (Windows).

    Not ``ru_maxrss`` on Linux: it survives fork and exec, so a process started by a large one (a
    local worker by the main process, a benchmark's child by pytest) reports its parent's size at
    the fork when that is larger. ``VmHWM`` belongs to the address space, new at exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def _probe(spec: JobSpec, registries: Any, tokenizer: Any) -> Any:
    from harness.analyses.probe import build_probe

    probe_tasks = [registries.tasks.get(name) for name in spec.probe]
    return build_probe(probe_tasks, spec.load.context(), tokenizer, spec.config, seed=spec.config.data_seed)


def _save_features(model: Any, probe: Any, acc: Any, job_dir: Path) -> float:
    """Layer features of ``model`` on the probe set to ``job_dir/features.npy`` (float32); seconds spent."""
    import numpy as np

    from harness.analyses.features import layer_features

    start = time.perf_counter()
    features = layer_features(model, probe, acc, model_pooling(model, acc))
    if acc.is_main_process:
        job_dir.mkdir(parents=True, exist_ok=True)
        tmp = job_dir / f".{FEATURES_FILE}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, features.astype(np.float32), allow_pickle=False)
        tmp.replace(job_dir / FEATURES_FILE)
    acc.wait_for_everyone()
    return time.perf_counter() - start


def model_pooling(model: Any, acc: Any) -> str:
    return str(acc.unwrap_model(model).pooling)


def _run_training(
    spec: JobSpec, tasks: Sequence[Any], registries: Any, acc: Any, job_dir: Path, resume: bool, progress: Any
) -> dict[str, Any]:
    from harness.training.model import load_tokenizer
    from harness.training.resume import discard_state
    from harness.training.runner import TrainSetup, run_job

    cfg = spec.config
    observers: list[Any] = []
    probe = None
    if spec.probe:
        probe = _probe(spec, registries, load_tokenizer(cfg.model))
    if spec.observe and cfg.observe_every > 0 and probe is not None:
        from harness.analyses.observers import TrainingObserver

        observers.append(TrainingObserver(probe, every=cfg.observe_every))
    setup = TrainSetup(spec.kind, tasks, spec.seed, registries.metrics, cfg, spec.load.context(), acc)
    trained = run_job(setup, job_dir, resume, progress, observers)
    record = trained.record
    measure: dict[str, float] = {}
    if observers:
        measure["observers"] = float(sum(o.state().get("seconds", 0.0) for o in observers))
    features = None
    if spec.features and probe is not None:
        progress.phase("probe-set features", 1)
        measure["features"] = _save_features(trained.model, probe, acc, job_dir)
        features = FEATURES_FILE
    if acc.is_main_process:
        discard_state(job_dir)  # only needed to resume an unfinished job: a finished one keeps no optimizer state
    return {
        **record,
        "train_seconds": trained.train_seconds,
        "train_examples": trained.train_examples,
        "measure_seconds": measure,
        "features": features,
    }


def _run_init(
    spec: JobSpec, tasks: Sequence[Any], registries: Any, acc: Any, job_dir: Path, progress: Any
) -> dict[str, Any]:
    """The untrained model with every task's head: gradient alignment and features on the probe set."""
    from accelerate.utils import set_seed

    from harness.analyses.observers import measure_at_init
    from harness.training.model import HeadSpec, build_model

    cfg = spec.config
    set_seed(spec.seed)
    model, tokenizer = build_model(cfg.model, [HeadSpec.of(t) for t in tasks], cfg.pooling, cfg.dropout)
    model = acc.prepare(model)
    probe = _probe(spec, registries, tokenizer)
    progress.phase("gradients at the starting encoder", 1)
    start = time.perf_counter()
    observations = {"init": measure_at_init(model, probe, acc)}
    seconds = time.perf_counter() - start
    feature_seconds = _save_features(model, probe, acc, job_dir)
    return {
        "kind": "init",
        "tasks": list(spec.tasks),
        "seed": spec.seed,
        "best_epoch": 0,
        "epochs_trained": 0,
        "splits": {},
        "metrics": {},
        "dev": {},
        "history": [],
        "data_fingerprints": {},
        "measure_seconds": {"init": seconds, "features": feature_seconds},
        "observations": observations,
        "features": FEATURES_FILE,
    }
