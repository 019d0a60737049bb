"""TAG lookahead affinity from precomputed per-task gradients (Fifty et al. 2021, eq. 3).

The same quantity as ``harness.analyses.tag.inter_task_affinity``:

    Z[i, j] = 1 - L_j(theta_s - eta * g_i) / L_j(theta_s),   g_i = grad_{theta_s} L_i

**Row i is the task stepped on, column j the task whose loss changes; positive = the step on
i lowers j's loss (i helps j), negative = it raises it.** Not symmetric, at most 1 for positive
losses. Not the gradient cosine (``harness.analyses.gradients``): Z measures what a step of
size eta does to the other task's loss, curvature included; the cosine only compares directions.

``inter_task_affinity`` takes one loss function per task and runs T backward and T + T^2
forward passes. Here the gradients are given (e.g. from ``observers.task_gradients``, which
shares one encoder pass between the tasks of an input stream) and ``losses()`` returns every
task's loss at once, so a caller whose tasks share inputs pays one forward per input stream:
S + T * S forwards for S streams, no backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import AnalysisError

if TYPE_CHECKING:
    import torch


def _restore(params: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    import torch

    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)  # a copy, not p += eta * g, which would not undo the step bit for bit


def _check_losses(table: np.ndarray) -> None:
    """table [T + 1, T]: row 0 the losses at theta_s, row 1 + i after the step on task i."""
    base = table[0]
    for j, value in enumerate(base):
        if not math.isfinite(value) or value <= 0:
            raise AnalysisError(f"task {j}'s loss is {value}: the relative change 1 - L'/L needs a finite L > 0")
    bad = np.argwhere(~np.isfinite(table[1:]))
    if len(bad):
        i, j = bad[0]
        raise AnalysisError(f"task {j}'s loss is not finite after the lookahead step on task {i} (lower lr?)")


def lookahead_affinity(
    params: Sequence[torch.Tensor],
    task_grads: Sequence[Sequence[torch.Tensor | None]],
    losses: Callable[[], torch.Tensor],
    lr: float,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """TAG lookahead affinity Z [T, T] from given gradients: Z[i, j] = 1 - L_j(theta - lr g_i) / L_j(theta).

    ``params``: the shared parameters theta_s the lookahead step moves (everything else stays
    fixed). ``task_grads[i][k]``: task i's loss gradient on ``params[k]`` (None = no step on that
    parameter). ``losses()``: a [T] tensor of every task's loss on fixed batches at the current
    parameters (called 1 + T times, under ``torch.no_grad``). ``lr``: the lookahead learning
    rate eta > 0 (a plain SGD step). ``reduce``: applied once to the [1 + T, T] float64 table of
    all losses before the ratio, e.g. an all-reduce sum when ``losses()`` returns each
    process's share of a global mean, so every process gets the same Z.

    The parameters are restored bit for bit from a copy after every step (also on error); no
    ``.grad`` is read or written. The caller sets eval mode (with dropout the losses, and Z, are
    random). Memory: one copy of ``params``. Raises ``AnalysisError`` (a ``ValueError``) for no
    tasks, a non-positive or non-finite ``lr``, gradients that do not match ``params``, a loss
    L_j(theta) that is not finite and positive, or a non-finite loss after a step.
    """
    import torch

    if not task_grads:
        raise AnalysisError("TAG affinity needs at least one task's gradients; got none")
    if not (math.isfinite(lr) and lr > 0):
        raise AnalysisError(f"the lookahead learning rate must be a positive number; got {lr}")
    params = list(params)
    for i, grads in enumerate(task_grads):
        if len(grads) != len(params):
            raise AnalysisError(f"task {i} has {len(grads)} gradients for {len(params)} shared parameters")
    saved = [p.detach().clone() for p in params]
    rows = []
    try:
        with torch.no_grad():
            rows.append(losses().detach().double().reshape(-1))
            for grads in task_grads:
                for p, g in zip(params, grads, strict=True):
                    if g is not None:
                        p.sub_(g.to(p.dtype), alpha=lr)
                rows.append(losses().detach().double().reshape(-1))
                _restore(params, saved)
    finally:
        _restore(params, saved)
    if any(r.numel() != len(task_grads) for r in rows):
        raise AnalysisError(f"losses() must return {len(task_grads)} values, one per task; got {rows[0].numel()}")
    table = torch.stack(rows)  # [1 + T, T]
    if reduce is not None:
        table = reduce(table)
    values = table.cpu().numpy()
    _check_losses(values)
    return 1.0 - values[1:] / values[0][None, :]
