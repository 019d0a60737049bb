"""Run configuration: one frozen dataclass, profiles, and validated overrides.

Resolution order (later wins): dataclass defaults < profile < ``--config FILE`` < ``--set``
< explicit flags. Never mutate a config: derive with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.trackers import parse_report_to
from harness.errors import ConfigError

SAMPLING = ("proportional", "temperature", "uniform")
EXECUTORS = ("sequential", "local", "ray")
THRESHOLDS = ("fixed", "tuned")
POOLING = ("mean", "cls")


@dataclass(frozen=True)
class RunConfig:
    model: str = "minilm"  # preset ("minilm", "tiny"), a local model folder, or a hub id
    max_length: int = 128  # tokens per input; longer inputs are truncated
    batch_size: int = 16  # examples per optimizer micro-step, over all processes together
    eval_batch_size: int = 64
    epochs: int = 2  # the spine main job fits 15 minutes on 2 CPU cores with 2 epochs
    patience: int = 0  # early stopping: stop a job after this many epochs without a better dev score; 0 = off
    learning_rate: float = 1e-4  # all-MiniLM-L6-v2 is small; 1e-4 learns within 2 epochs
    head_learning_rate: float = 1e-3  # the randomly initialised heads; 0 = learning_rate (MTL heads converge slower)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1  # fraction of optimizer steps with linear warm-up
    grad_accum_steps: int = 1  # micro-steps per optimizer step
    group_by_length: bool = True  # batches of rows of similar length, in random order: 1/3 of the padded tokens
    bf16: bool = False  # bf16 autocast: recent GPUs, CPUs with AVX512-BF16/AMX (20x slower on CPUs without)
    sampling: str = "proportional"  # how MTL picks the next batch's task: proportional|temperature|uniform
    temperature: float = 2.0  # for sampling="temperature": p_i ~ n_i ** (1 / temperature)
    pooling: str = "mean"  # sentence representation for the heads: mean over tokens, or cls
    dropout: float = 0.1  # before each head (and inside the tiny encoder)
    seed: int = 0  # first seed; --seeds N runs seed, seed+1, ..., seed+N-1
    seeds: int = 1
    data_seed: int = 0  # synthetic corpora, splits and slices (kept fixed across training seeds)
    max_train_examples: int = 0  # per input stream; 0 = all (a seeded slice otherwise)
    max_eval_examples: int = 0  # per split of dev/test; 0 = all
    multilabel_threshold: str = "fixed"  # multi-label decisions: fixed (p > 0.5) | tuned (per label, best F1 on dev)
    keep_best: bool = True  # save the best checkpoint (by the primary dev metric) of every job
    # Resume state (weights, optimizer, RNG: 3x the model's size) of an unfinished job: saved after an
    # epoch once this many minutes passed since the job's start or last save (0 = every epoch); never
    # after the last epoch, deleted when the job finishes. A kill loses at most this long plus one epoch.
    state_every_minutes: float = 10.0
    probe_examples: int = 256  # probe set for CKA and gradients: dev rows drawn from all selected tasks' inputs
    probe_batch: int = 32  # rows per input stream in the gradient/TAG probe batches
    observe_every: int = 50  # gradient alignment and TAG during the all-task MTL run: every k optimizer steps
    pairs: bool = False  # also train every task pair (the measured pair-gap matrix); --pairs
    groupers: str = "affinity:tag,cluster:cka_linear"  # groupers whose groups are trained (NAME or NAME:PREDICTOR)
    leaderboard: str = ""  # a leaderboard folder the finished run is recorded in ("" = none); --leaderboard
    report_to: str = ""  # experiment trackers to log to (accelerate's): "" = none, "tensorboard"; --report-to
    job_store: str = (
        ""  # finished jobs shared across runs: "" = $HARNESS_JOB_STORE or $HARNESS_CACHE/jobs; "none" = off
    )
    executor: str = "sequential"  # where jobs run: sequential (this process) | local (worker processes) | ray
    workers: int = 0  # --executor local: jobs at once; 0 = one per GPU, or 2 without GPUs
    ray_address: str = ""  # --executor ray: the cluster to join ("" = start a local Ray on demand)
    job_cpus: int = 0  # CPUs (torch threads) per job; 0 = auto: all (sequential), cores / workers (local), 1 (ray)
    job_memory_gb: float = 0.0  # --executor ray: memory reserved per job (0 = no reservation)
    job_retries: int = 1  # local and ray: reruns of a job whose worker process died (not of a job that raised)

    def __post_init__(self) -> None:
        checks = [
            (self.sampling in SAMPLING, f"sampling must be one of {', '.join(SAMPLING)}"),
            (self.pooling in POOLING, f"pooling must be one of {', '.join(POOLING)}"),
            (self.multilabel_threshold in THRESHOLDS, f"multilabel_threshold must be one of {', '.join(THRESHOLDS)}"),
            (self.batch_size > 0 and self.eval_batch_size > 0, "batch sizes must be positive"),
            (self.epochs > 0 and self.seeds > 0, "epochs and seeds must be positive"),
            (0 <= self.seed and self.seed + self.seeds <= 2**32, "seed must be >= 0 and seed + seeds <= 2**32"),
            (0 <= self.data_seed < 2**32, "data_seed must be in [0, 2**32)"),
            (self.patience >= 0, "patience must be >= 0 (0 = no early stopping)"),
            (self.grad_accum_steps > 0, "grad_accum_steps must be positive"),
            (self.max_length > 8, "max_length must be above 8"),
            (self.temperature > 0, "temperature must be positive"),
            (0 < self.learning_rate < math.inf, "learning_rate must be a positive finite number"),
            (0 <= self.head_learning_rate < math.inf, "head_learning_rate must be >= 0 (0 = learning_rate) and finite"),
            (0 <= self.weight_decay < math.inf, "weight_decay must be >= 0 and finite"),
            (0 <= self.warmup_ratio < 1 and 0 <= self.dropout < 1, "warmup_ratio and dropout must be in [0, 1)"),
            (self.max_train_examples >= 0 and self.max_eval_examples >= 0, "max_*_examples must be >= 0"),
            (self.probe_examples >= 4 and self.probe_batch >= 2, "probe_examples must be >= 4 and probe_batch >= 2"),
            (self.observe_every >= 0, "observe_every must be >= 0 (0 = no measurement during training)"),
            (self.executor in EXECUTORS, f"executor must be one of {', '.join(EXECUTORS)}"),
            (self.workers >= 0 and self.job_cpus >= 0, "workers and job_cpus must be >= 0 (0 = auto)"),
            (self.job_memory_gb >= 0 and self.job_retries >= 0, "job_memory_gb and job_retries must be >= 0"),
            (0 <= self.state_every_minutes < math.inf, "state_every_minutes must be >= 0 (0 = every epoch)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid config: {message}")
        parse_report_to(self.report_to)  # an unknown tracker name: the supported ones

    def example_limit(self, split: str) -> tuple[str, int]:
        """(config key, rows) of the seeded slice a split is cut to: train or evaluation (0 = all)."""
        key = "max_train_examples" if split == "train" else "max_eval_examples"
        return key, getattr(self, key)

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def training_hash(self) -> str:
        """Hash of every field that changes what a job computes (seeds are per job)."""
        fields = {k: v for k, v in self.to_dict().items() if k not in PROTOCOL_KEYS}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


#: Where and how a run's jobs run: neither what a job computes nor which jobs a run has.
EXECUTION_KEYS = (
    "executor",
    "workers",
    "ray_address",
    "job_cpus",
    "job_memory_gb",
    "job_retries",
    "state_every_minutes",
)
#: Keys that change which jobs a run has, or what it reports, not what a job computes (left out of ``training_hash``).
PROTOCOL_KEYS = (
    "seeds",
    "seed",
    "keep_best",
    "pairs",
    "groupers",
    "leaderboard",
    "report_to",
    "job_store",
    *EXECUTION_KEYS,
)

#: Keys a ``--resume`` may change: where a run reports, finds finished jobs and runs its jobs, not what it
#: computes or which jobs it has.
RESUMABLE_KEYS = ("report_to", "leaderboard", "job_store", *EXECUTION_KEYS)

PROFILES: dict[str, dict[str, Any]] = {
    # The tiny random-init model on a small data slice: a whole run in about a minute here.
    "smoke": {
        "model": "tiny",
        "max_length": 64,
        "epochs": 3,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "max_train_examples": 480,
        "max_eval_examples": 200,
    },
    # The whole protocol on the tiny model: every pair, 3 seeds (noise ceiling), early stopping.
    "science-smoke": {
        "model": "tiny",
        "max_length": 64,
        "epochs": 4,
        "patience": 1,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "max_train_examples": 400,
        "max_eval_examples": 200,
        "seeds": 3,
        "pairs": True,
        "probe_examples": 128,
        "observe_every": 5,
        "groupers": "affinity:tag,cluster:cka_linear,pair_gaps",
    },
    # The pretrained offline encoder (all-MiniLM-L6-v2) with a fine-tuning schedule.
    "default": {},
}


#: The data size a profile asks loaders for (``LoadContext.profile``): "smoke" (small) or "default".
DATA_PROFILES: dict[str, str] = {"smoke": "smoke", "science-smoke": "smoke", "default": "default"}


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(RunConfig)


def coerce(key: str, value: Any, where: str, parse: bool = True) -> Any:
    """Validate one override against RunConfig's field types; with ``parse``, strings are parsed."""
    types_ = _field_types()
    if key not in types_:
        close = difflib.get_close_matches(key, list(types_), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(types_)}"
        raise ConfigError(f"{where}: unknown config key {key!r}{hint}")
    target = types_[key]
    if isinstance(target, types.UnionType):
        target = next(t for t in typing.get_args(target) if t is not type(None))
    try:
        if parse and isinstance(value, str) and target is not str:
            return _parse(value, target)
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is not target:
            raise ValueError
        return value
    except ValueError:
        raise ConfigError(f"{where}: {key} must be {target.__name__}, got {value!r}") from None


def _parse(text: str, target: type) -> Any:
    if target is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    return target(text)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` items to a validated dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, for example --set epochs=2")
        out[key.strip()] = coerce(key.strip(), value.strip(), f"--set {item}")
    return out


def load_config_file(path: Path) -> dict[str, Any]:
    """The validated keys of a ``--config`` TOML file (UTF-8, a byte-order mark allowed)."""
    from harness.data.textfile import read_text

    if not Path(path).exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(read_text(path, ConfigError, f"config file {path}"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None
    return {k: coerce(k, v, str(path), parse=False) for k, v in data.items()}  # TOML values are typed


def resolve(profile: str, config_file: Path | None = None, sets: list[str] = (), **flags: Any) -> RunConfig:  # type: ignore[assignment]
    """Build the frozen RunConfig: defaults < profile < file < --set < flags (None = not given)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    layers: list[tuple[str, dict[str, Any]]] = [(f"profile {profile}", dict(PROFILES[profile]))]
    if config_file is not None:
        layers.append((f"config file {config_file}", load_config_file(config_file)))
    layers += [(f"--set {item}", parse_sets([item])) for item in sets]
    flag = {k: coerce(k, v, f"--{k.replace('_', '-')}") for k, v in flags.items() if v is not None}
    layers += [(f"--{k.replace('_', '-')} {v}", {k: v}) for k, v in flag.items()]
    values: dict[str, Any] = {}
    for where, layer in layers:  # the first layer that makes the config invalid is named in the error
        values.update(layer)
        try:
            RunConfig(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {str(exc).removeprefix('invalid config: ')}") from None
    return RunConfig(**values)
