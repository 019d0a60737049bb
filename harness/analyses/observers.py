"""Gradient alignment and TAG lookahead affinity measured on the probe batches, at the start and during training.

Both signals are taken on the fixed probe batches (``ProbeSet.batches()``: the first
``probe_batch`` rows of each input stream) with respect to the **shared encoder's** parameters
(not the heads), in eval mode (no dropout: a deterministic value), in float32 (autocast off,
also under bf16 training: TAG's relative loss changes at fine-tuning learning rates, ~1e-4,
are far below bf16's resolution of ~4e-3). Task t's loss is its mean loss over the labelled
rows of its stream's probe batch (``task_loss_sum``), as in training.

- **Gradient alignment** (``gradient_cosine_matrix``): cosine between tasks i and j's
  gradients, a similarity in [-1, 1], higher = aligned, negative = conflicting (PCGrad); per
  layer ([L, T, T], layer names from ``transformer_layer_of``) and over all shared parameters.
- **TAG lookahead affinity** (``lookahead_affinity``, Fifty et al. 2021): Z[i, j] =
  1 - L_j(theta - lr g_i) / L_j(theta). Row i = the task stepped on, column j = the task whose
  loss changes; positive = the step on i helps j. Not symmetric; not a cosine.

Under several processes every process takes a contiguous share of each probe batch (by
process index), divides its loss sums by the batch's labelled rows (known to every process:
all hold the whole probe set), and the gradients of all tasks are summed over processes by one
all-reduce per measurement; TAG's loss table by one more. Forward and backward run on the
unwrapped module, so DDP never synchronises, and the result equals the one-process result.

A measurement leaves the model as it found it: parameters (restored bit for bit), ``.grad``
fields (``torch.autograd.grad``), train/eval mode, and the RNG streams (forked), so a training
run with a ``TrainingObserver`` is bit-identical to one without.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.analyses.features import full_precision
from harness.analyses.gradients import GradientAlignment, gradient_cosine_matrix
from harness.analyses.lookahead import lookahead_affinity
from harness.analyses.probe import ProbeSet, ProbeStream
from harness.api import MISSING_LABEL, ProblemType
from harness.errors import AnalysisError

if TYPE_CHECKING:
    import torch

    from harness.training.observers import StepInfo

log = logging.getLogger("harness")

DIRECTIONS = {
    "cosine": "gradient cosine between task i and task j on the shared encoder: in [-1, 1], higher = aligned, "
    "negative = conflicting; symmetric",
    "conflicting_fraction": "share of layers whose cosine is negative; symmetric, diagonal 0",
    "tag": "TAG lookahead affinity Z[i][j] = 1 - L_j(after an SGD step on task i) / L_j: row = task stepped on, "
    "column = task whose loss changes, positive = i helps j; not symmetric",
}


def _labelled(problem_type: ProblemType, labels: torch.Tensor) -> torch.Tensor:
    """[rows] mask of labelled rows, as ``task_loss_sum`` counts them."""
    import torch

    if problem_type is ProblemType.REGRESSION:
        return ~torch.isnan(labels)
    keep = labels != MISSING_LABEL
    return keep.all(dim=-1) if problem_type is ProblemType.MULTI_LABEL else keep


def _share(batch: ProbeStream, acc: Any) -> ProbeStream:
    """This process's contiguous share of a probe batch (the first rows % P processes take one more)."""
    base, extra = divmod(batch.rows, acc.num_processes)
    rank = acc.process_index
    start = rank * base + min(rank, extra)
    return batch.part(start, start + base + (rank < extra))


def _tasks_of(batches: Sequence[ProbeStream], specs: dict[str, Any], task_names: Sequence[str] | None) -> list[str]:
    """The measured tasks: ``task_names`` or every probe task with a head, in probe order."""
    on_probe = [t for b in batches for t in b.task_names]
    tasks = [t for t in on_probe if t in specs] if task_names is None else list(task_names)
    missing = [t for t in tasks if t not in specs or t not in on_probe]
    if missing or not tasks:
        raise AnalysisError(f"tasks {missing or tasks} need a head in the model and rows in the probe set")
    return tasks


def _counts(batches: Sequence[ProbeStream], specs: dict[str, Any], tasks: Sequence[str]) -> dict[str, float]:
    """Labelled rows of each task in its *whole* probe batch (the denominator of its mean loss)."""
    counts = {}
    for batch in batches:
        for t in batch.task_names:
            if t in tasks:
                counts[t] = float(_labelled(specs[t].problem_type, batch.labels[t]).sum())
    empty = [t for t in tasks if counts[t] == 0]
    if empty:
        raise AnalysisError(f"tasks {empty} have no labelled row in the probe batches; raise probe_batch")
    return counts


@contextlib.contextmanager
def measuring(net: Any, device: Any) -> Iterator[None]:
    """Eval mode, float32, forked RNG streams; the module's mode is restored afterwards."""
    import torch

    was_training = net.training
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    net.eval()
    try:
        with torch.random.fork_rng(devices=devices), full_precision(device):
            yield
    finally:
        net.train(was_training)


def _logits(net: Any, part: ProbeStream, tasks: Sequence[str], device: Any) -> dict[str, torch.Tensor]:
    inputs = {k: v.to(device) for k, v in part.inputs.items()}
    # The class's forward, not accelerate's autocast-patched instance attribute.
    return type(net).forward(net, tasks=tasks, **inputs)  # type: ignore[no-any-return]


def _device(net: Any) -> Any:
    """Where the model's parameters are (acc.device once prepared; the CPU before ``prepare``)."""
    return next(net.parameters()).device


def shared_parameters(net: Any) -> list[tuple[str, torch.nn.Parameter]]:
    """The encoder's trainable parameters, named as in ``net.encoder`` (``encoder.layer.0...``)."""
    return [(n, p) for n, p in net.encoder.named_parameters() if p.requires_grad]


def task_gradients(
    model: Any, batches: Sequence[ProbeStream], acc: Any, task_names: Sequence[str] | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Each task's loss gradient on the shared encoder parameters, on the probe batches.

    Returns ``{task: {parameter name: gradient}}`` (float32, or float64 for a float64 model, on
    the model's device), tasks in ``task_names`` order (default: every probe task the model has a
    head for), parameter names as in ``model.encoder`` (``transformer_layer_of`` reads them);
    parameters no task's loss reaches (e.g. an unused pooler) are left out. One encoder pass
    per stream serves its tasks; task t's loss is the mean over the labelled rows of its whole
    probe batch; one all-reduce over processes (see the module docstring). Eval mode, no
    ``.grad`` touched. Raises ``AnalysisError`` for a task without a head, without probe rows or
    without a labelled probe row.
    """
    import torch

    from harness.training.model import task_loss_sum

    net = acc.unwrap_model(model)
    tasks = _tasks_of(batches, net.specs, task_names)
    counts = _counts(batches, net.specs, tasks)
    named = shared_parameters(net)
    params = [p for _, p in named]
    device = _device(net)
    sizes = [p.numel() for p in params]
    dtype = torch.float64 if any(p.dtype == torch.float64 for p in params) else torch.float32
    # One buffer: T gradients, then one "used" flag per parameter, all-reduced at once.
    flat = torch.zeros(len(tasks) * sum(sizes) + len(params), dtype=dtype, device=device)
    grads = flat[: len(tasks) * sum(sizes)].view(len(tasks), -1)
    used = flat[len(tasks) * sum(sizes) :]
    row = {t: k for k, t in enumerate(tasks)}
    with measuring(net, device):
        for batch in batches:
            mine = [t for t in batch.task_names if t in row]
            part = _share(batch, acc)
            if not mine or part.rows == 0:
                continue
            logits = _logits(net, part, mine, device)
            for k, t in enumerate(mine):
                total, _ = task_loss_sum(net.specs[t].problem_type, logits[t], part.labels[t].to(device))
                loss = total / counts[t]
                got = torch.autograd.grad(loss, params, retain_graph=k < len(mine) - 1, allow_unused=True)
                for (n, g), (start, stop) in zip(enumerate(got), _bounds(sizes), strict=True):
                    if g is not None:
                        grads[row[t], start:stop] += g.reshape(-1).to(dtype)
                        used[n] = 1.0
    if acc.num_processes > 1:
        torch.distributed.all_reduce(flat)  # in place: no second copy of T gradients
    return {
        t: {
            name: grads[row[t], start:stop].view_as(p)
            for (name, p), (start, stop), flag in zip(named, _bounds(sizes), used.tolist(), strict=True)
            if flag > 0
        }
        for t in tasks
    }


def _bounds(sizes: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes).tolist()
    return list(zip([0, *ends[:-1]], ends, strict=True))


def probe_losses(model: Any, batches: Sequence[ProbeStream], acc: Any, tasks: Sequence[str]) -> torch.Tensor:
    """[T] this process's share of each task's mean probe loss (sum over processes = the mean).

    One forward per stream under ``torch.no_grad``; call it inside ``measuring``.
    """
    import torch

    from harness.training.model import task_loss_sum

    net = acc.unwrap_model(model)
    counts = _counts(batches, net.specs, tasks)
    device = _device(net)
    out = torch.zeros(len(tasks), dtype=torch.float64, device=device)
    row = {t: k for k, t in enumerate(tasks)}
    with torch.no_grad():
        for batch in batches:
            mine = [t for t in batch.task_names if t in row]
            part = _share(batch, acc)
            if not mine or part.rows == 0:
                continue
            logits = _logits(net, part, mine, device)
            for t in mine:
                total, _ = task_loss_sum(net.specs[t].problem_type, logits[t], part.labels[t].to(device))
                out[row[t]] = total.double() / counts[t]
    return out


def tag_affinity(
    model: Any, batches: Sequence[ProbeStream], acc: Any, grads: dict[str, dict[str, torch.Tensor]], lr: float
) -> np.ndarray:
    """TAG Z [T, T] (tasks in ``grads`` order) from ``task_gradients``' output: S + T*S forwards, no backward."""
    import torch

    net = acc.unwrap_model(model)
    tasks = list(grads)
    named = [(n, p) for n, p in shared_parameters(net) if n in grads[tasks[0]]]
    params = [p for _, p in named]
    per_task = [[grads[t][n] for n, _ in named] for t in tasks]

    def reduce(table: torch.Tensor) -> torch.Tensor:
        if acc.num_processes > 1:
            torch.distributed.all_reduce(table)
        return table

    with measuring(net, _device(net)):
        return lookahead_affinity(params, per_task, lambda: probe_losses(model, batches, acc, tasks), lr, reduce)


@dataclass(frozen=True)
class Measurement:
    """One measurement on the probe batches; ``tag`` is None when it was not asked for (or lr = 0)."""

    tasks: tuple[str, ...]
    alignment: GradientAlignment  # cosines [L, T, T] per layer and [T, T] overall
    tag: np.ndarray | None  # [T, T], row = task stepped on
    seconds: float


def measure(model: Any, probe: ProbeSet, acc: Any, lr: float | None = None) -> Measurement:
    """Gradient alignment, and TAG with lookahead rate ``lr`` when ``lr`` > 0, on ``probe.batches()``."""
    start = time.perf_counter()
    batches = probe.batches()
    grads = task_gradients(model, batches, acc)
    alignment = gradient_cosine_matrix(list(grads.values()))
    tag = tag_affinity(model, batches, acc, grads, lr) if lr is not None and lr > 0 else None
    return Measurement(tuple(grads), alignment, tag, time.perf_counter() - start)


def alignment_json(tasks: Sequence[str], alignment: GradientAlignment) -> dict[str, Any]:
    """JSON-ready gradient alignment: task order, layer names, [L][T][T] and [T][T] lists."""
    return {
        "tasks": list(tasks),
        "layers": list(alignment.layers),
        "cosine_per_layer": alignment.per_layer.tolist(),
        "cosine_overall": alignment.overall.tolist(),
        "conflicting_fraction": alignment.conflicting_fraction.tolist(),
        "directions": {k: DIRECTIONS[k] for k in ("cosine", "conflicting_fraction")},
    }


def measure_at_init(model: Any, probe: ProbeSet, acc: Any) -> dict[str, Any]:
    """Gradient alignment of the model as it is now (before training: one pass per stream, T backwards).

    JSON-ready (``alignment_json``) plus ``rows_per_stream`` and ``seconds``. Call it on every
    process (it all-reduces).
    """
    m = measure(model, probe, acc)
    return {**alignment_json(m.tasks, m.alignment), "rows_per_stream": probe.batch_rows, "seconds": m.seconds}


STATE_VERSION = 1
_SUMS = ("cosine_per_layer", "cosine_overall", "conflicting_fraction", "tag")


class TrainingObserver:
    """Gradient alignment and TAG on the probe batches every ``every`` optimizer steps (a ``StepObserver``).

    At steps ``every``, ``2 * every``, ... (never at step 0; ``every`` = 0 measures nothing) it
    measures the cosines and TAG with the next step's learning rate (``info.learning_rate``;
    TAG is skipped when it is 0, e.g. after the last step of a linear schedule) and accumulates
    the mean over measurements. ``state()`` holds the sums (float64, exact through JSON), so a
    resumed job reports the same means as an uninterrupted one, and the means with task order,
    layer names and directions. A measurement that is undefined (``AnalysisError``, e.g. a zero
    gradient) is recorded under ``skipped`` with its step and reason; training goes on.
    """

    def __init__(self, probe: ProbeSet, every: int, name: str = "probe_gradients"):
        self.probe = probe
        self.every = every
        self.name = name
        self.tasks: list[str] = []
        self.layers: list[str] = []
        self.sums: dict[str, np.ndarray] = {}
        self.measurements = 0  # cosine measurements taken
        self.tag_measurements = 0  # of which with TAG (lr > 0)
        self.steps: list[int] = []
        self.skipped: list[dict[str, Any]] = []
        self.seconds = 0.0

    def after_step(self, info: StepInfo) -> None:
        if self.every <= 0 or info.step % self.every:
            return
        try:
            m = measure(info.model, self.probe, info.acc, info.learning_rate)
        except AnalysisError as exc:  # the same on every process: its inputs are all-reduced
            log.warning("step %d: gradient measurement skipped: %s", info.step, exc)
            self.skipped.append({"step": info.step, "reason": str(exc)})
            return
        self._add(m, info.step)

    def _add(self, m: Measurement, step: int) -> None:
        if not self.tasks:
            self.tasks, self.layers = list(m.tasks), list(m.alignment.layers)
        elif self.tasks != list(m.tasks) or self.layers != list(m.alignment.layers):
            raise AnalysisError(f"{self.name}: tasks or layers changed between measurements")
        values = {
            "cosine_per_layer": m.alignment.per_layer,
            "cosine_overall": m.alignment.overall,
            "conflicting_fraction": m.alignment.conflicting_fraction,
        }
        if m.tag is not None:
            values["tag"] = m.tag
            self.tag_measurements += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, np.zeros_like(value, dtype=np.float64)) + value
        self.measurements += 1
        self.steps.append(step)
        self.seconds += m.seconds

    def means(self) -> dict[str, Any]:
        """Mean over measurements of each matrix (lists), None before the first one."""
        counts = {k: self.tag_measurements if k == "tag" else self.measurements for k in _SUMS}
        return {k: (self.sums[k] / counts[k]).tolist() if counts[k] and k in self.sums else None for k in _SUMS}

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "tasks": self.tasks,
            "layers": self.layers,
            "every": self.every,
            "rows_per_stream": self.probe.batch_rows,
            "measurements": self.measurements,
            "tag_measurements": self.tag_measurements,
            "steps": self.steps,
            "skipped": self.skipped,
            "seconds": self.seconds,
            "mean": self.means(),
            "sum": {k: v.tolist() for k, v in self.sums.items()},
            "directions": DIRECTIONS,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise AnalysisError(f"{self.name}: saved state version {state.get('version')} != {STATE_VERSION}")
        self.tasks, self.layers = list(state["tasks"]), list(state["layers"])
        self.sums = {k: np.asarray(v, dtype=np.float64) for k, v in state["sum"].items()}
        self.measurements, self.tag_measurements = int(state["measurements"]), int(state["tag_measurements"])
        self.steps, self.skipped = list(state["steps"]), list(state["skipped"])
        self.seconds = float(state["seconds"])
