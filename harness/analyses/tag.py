"""TAG lookahead inter-task affinity (Fifty et al. 2021, "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS, eq. 3).

On one batch, with shared parameters theta_s, task-specific parameters held fixed and a
lookahead learning rate eta:

    Z[i, j] = 1 - L_j(theta_s - eta * grad_{theta_s} L_i) / L_j(theta_s)

the relative decrease of task j's loss after one plain SGD step on the shared parameters with
task i's loss alone. **Row i is the task stepped on, column j the task whose loss changes.**
Positive: a step on i lowers j's loss (i helps j); negative: it raises it (i hurts j); 0: no
effect. Z is at most 1 (for positive losses), unbounded below, and not symmetric. Fifty et al.
average Z over training steps and group tasks on the averaged matrix; both are the caller's.

Not the gradient cosine of ``harness.analyses.gradients``: that compares the directions of
two gradients, while Z measures what an actual step of size eta does to the other task's loss,
curvature included.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import AnalysisError

if TYPE_CHECKING:
    import torch
    from torch import nn


def _check_params(shared_params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    params = list(shared_params)
    if not params:
        raise AnalysisError("TAG affinity needs at least one shared parameter; got none")
    if len({id(p) for p in params}) != len(params):
        raise AnalysisError("shared_params lists a parameter twice; it would be stepped twice")
    for k, p in enumerate(params):
        if not (p.is_leaf and p.requires_grad):
            raise AnalysisError(f"shared_params[{k}] is not a leaf tensor that requires grad (a trainable parameter)")
    return params


def _loss_value(loss: object, t: int, when: str = "") -> float:
    import torch

    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise AnalysisError(f"loss_fns[{t}] must return a scalar tensor; got {type(loss).__name__}")
    value = float(loss.detach())
    if not math.isfinite(value):
        raise AnalysisError(f"loss_fns[{t}] returned {value}{when}")
    return value


def _restore(params: Sequence[torch.Tensor], saved: Sequence[torch.Tensor]) -> None:
    import torch

    with torch.no_grad():
        for p, s in zip(params, saved, strict=True):
            p.copy_(s)  # a copy, not p += eta * g, which would not undo the step bit for bit


def inter_task_affinity(
    model: nn.Module,
    shared_params: Sequence[torch.Tensor],
    loss_fns: Sequence[Callable[[nn.Module], torch.Tensor]],
    lr: float,
) -> np.ndarray:
    """TAG lookahead affinity Z [T, T] (Fifty et al. 2021, eq. 3): Z[i, j] = 1 - L_j(step on i) / L_j.

    ``loss_fns[t](model)`` returns task t's scalar loss on ONE fixed batch (the same batch every
    call); ``shared_params`` are the parameters the lookahead step moves (the shared encoder),
    everything else (task heads) stays fixed; ``lr`` is the lookahead learning rate eta > 0.
    Row i = the task stepped on, column j = the task whose loss changes; positive = i's step
    lowers j's loss. The diagonal Z[i, i] is task i's own relative improvement.

    Cost: T backward passes and T + T^2 forward passes; memory: one copy of the shared
    parameters and one task's gradient. Gradients are taken with ``torch.autograd.grad``, so
    no ``.grad`` field and no optimizer state is touched; the shared parameters are restored
    bit for bit from a copy after each step, also when a loss function raises. The model's
    train/eval mode is left as it is: with dropout active the losses, and Z, are random (use
    ``model.eval()`` for a deterministic value); buffers such as BatchNorm running statistics
    are not restored. Float64 for the ratio; the losses are computed in the model's dtype.

    Raises ``AnalysisError`` (a ``ValueError``) for no tasks, a non-positive or non-finite
    ``lr``, no or repeated shared parameters or ones that do not require grad, a loss that is
    not a finite scalar tensor, a loss that does not depend on the shared parameters, or a
    loss L_j(theta_s) <= 0 (the relative change is then meaningless).
    """
    import torch

    if not loss_fns:
        raise AnalysisError("TAG affinity needs at least one task loss; got none")
    if not (math.isfinite(lr) and lr > 0):
        raise AnalysisError(f"the lookahead learning rate must be a positive number; got {lr}")
    params = _check_params(shared_params)
    tasks = len(loss_fns)
    base = np.empty(tasks)  # L_j(theta_s)
    after = np.empty((tasks, tasks))  # L_j(theta_s - eta grad L_i), row i
    saved = [p.detach().clone() for p in params]
    try:
        for i, loss_fn in enumerate(loss_fns):
            # theta_s is the original here (restored after every step), so L_i(theta_s) is measured now
            loss = loss_fn(model)
            base[i] = _loss_value(loss, i)
            if base[i] <= 0:
                raise AnalysisError(f"loss_fns[{i}] is {base[i]} <= 0: the relative change 1 - L'/L needs L > 0")
            if not loss.requires_grad:
                raise AnalysisError(f"loss_fns[{i}] does not depend on the shared parameters")
            grads = torch.autograd.grad(loss, params, allow_unused=True)  # leaves every .grad alone
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is not None:  # None: the loss does not use this parameter, no step on it
                        p.sub_(lr * g)
                for j, other in enumerate(loss_fns):
                    after[i, j] = _loss_value(other(model), j, f" after the lookahead step on task {i} (lower lr?)")
            _restore(params, saved)
    finally:
        _restore(params, saved)
    return 1.0 - after / base[None, :]
