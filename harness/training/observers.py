"""Step observers: code that measures something during training without touching the loop.

The runner calls every observer's ``after_step`` once per optimizer step, after the update
and ``zero_grad``, on every process (an observer that all-reduces must run on all ranks).
An observer must leave the model as it found it: parameters, ``.grad`` fields (use
``torch.autograd.grad``), train/eval mode and RNG streams that training draws from. Its
measurements are JSON-ready: ``state()`` is saved with each epoch's checkpoint and
``load_state`` restores it on ``--resume``, so a resumed job reports the same averages as an
uninterrupted one. Gradient alignment and TAG lookahead affinity during MTL training are
measured through this protocol (``harness.analyses.observers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class StepInfo:
    """What an observer sees after an optimizer step."""

    model: Any  # the prepared model (DDP-wrapped under several processes): unwrap with acc.unwrap_model
    acc: Any  # the job's Accelerator
    step: int  # optimizer steps taken in this job so far, from 1 (continues across epochs and a resume)
    epoch: int  # 0-based epoch of the step
    learning_rate: float  # the shared encoder's learning rate for the next step


@runtime_checkable
class StepObserver(Protocol):
    """A measurement taken during training; see the module docstring for the rules."""

    name: str  # key of its results in the job's result ("observations")

    def after_step(self, info: StepInfo) -> None: ...

    def state(self) -> dict[str, Any]:
        """JSON-ready measurements so far (saved with each checkpoint, and the job's result)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore ``state()`` after a resume."""
        ...
