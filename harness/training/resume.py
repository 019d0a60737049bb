"""A job's resume state: what ``--resume`` needs to continue a job exactly, saved at a bounded cadence.

Exact resume works at epoch boundaries: every epoch reseeds the RNGs and the samplers from the
job seed and its index, and ends with an optimizer step (no gradient is carried over), so a
job continued from the state saved after epoch e trains epochs e+1, e+2, ... bit for bit as an
uninterrupted job does. ``job_dir/state`` holds:

- accelerate's ``save_state``: model, optimizer (AdamW's two moments: twice the model's size),
  scheduler, RNG states;
- ``history.json``: every epoch's record so far (the best epoch and early stopping are decided
  from it);
- ``observers.json``: the step observers' state (``harness.training.observers``);
- ``best.safetensors``: the selected epoch's weights, only when that epoch is not the saved one
  (they are kept in memory while the job trains, ``BestWeights``, and written to ``best/`` once,
  at the job's end).

A save is written whole into ``state.tmp`` (``history.json`` last: its presence marks a whole
save), then swapped in: ``state`` -> ``state.old``, ``state.tmp`` -> ``state``, ``state.old``
removed. A kill at any point leaves a whole state to resume from: the previous one, or, killed
between the two renames, the new one in ``state.tmp``, which ``restore_state`` puts in place.

When (``StateCadence``): after an epoch that another epoch follows, once ``state_every_minutes``
(a ``RunConfig`` key) of the job's wall time have passed since it started or last saved; 0 =
after every such epoch. Never after a job's last epoch: the job then finishes, and a finished
job's state is deleted unread (``discard_state``). A job killed mid-way loses at most that long
plus one epoch; ``--resume`` trains those epochs again and gets the same results. A job that
saved nothing starts over.

Sizes (all-MiniLM-L6-v2, 22.7 M parameters): 91 MB of weights, 271 MB of state per save.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.guards import describe_error
from harness.data.textfile import read_text
from harness.errors import RunError
from harness.training.observers import StepObserver

if TYPE_CHECKING:
    import torch
    from accelerate import Accelerator

STATE, STATE_TMP, STATE_OLD = "state", "state.tmp", "state.old"
HISTORY, OBSERVERS, BEST = "history.json", "observers.json", "best.safetensors"


class StateCadence:
    """Whether to save the resume state now: at most once per ``minutes`` of a job's wall time.

    ``minutes`` <= 0 saves after every epoch that another follows. Under several processes the
    main process's clock decides and its answer is broadcast, so every rank saves together
    (``save_state`` synchronises the ranks). ``clock`` returns seconds (monotonic).
    """

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.minutes = minutes
        self.clock = clock
        self.last = clock()  # the job's start (in this process), or its last save

    def due(self, acc: Accelerator) -> bool:
        """True when ``minutes`` have passed since the start or the last save (always for minutes <= 0)."""
        due = self.minutes <= 0 or self.clock() - self.last >= self.minutes * 60.0
        if acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            box = [due]
            broadcast_object_list(box, from_process=0)
            due = bool(box[0])
        return due

    def saved(self) -> None:
        self.last = self.clock()


@dataclass
class BestWeights:
    """The selected (best) epoch's weights, held in memory until the job writes ``best/`` once.

    ``weights`` is a CPU copy of the unwrapped model's ``state_dict`` ({name: tensor}), or None
    when the selected epoch is the model's current one (no copy is made after a job's last
    epoch, nor before any epoch improved). ``epoch`` is 1-based; 0 = none yet.
    """

    epoch: int = 0
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    def keep(self, model: Any, acc: Accelerator, epoch: int, *, copy: bool) -> None:
        """Epoch ``epoch`` is the new best: copy the model's weights (``copy``), or note that they are current."""
        self.epoch = epoch
        self.weights = None  # drop the old copy before taking the new one: one copy at a time
        if copy:
            state = acc.unwrap_model(model).state_dict()
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    def load_into(self, model: Any, acc: Accelerator) -> None:
        """Put the kept weights into ``model`` (no-op when they are its current ones)."""
        if self.weights is not None:
            acc.unwrap_model(model).load_state_dict(self.weights)


def save_state(
    acc: Accelerator,
    job_dir: Path,
    history: list[dict[str, Any]],
    observers: Sequence[StepObserver] = (),
    best: BestWeights | None = None,
) -> None:
    """Save the resume state after epoch ``len(history)`` to ``job_dir/state`` (see the module docstring).

    Written whole into ``state.tmp`` (``history.json`` last) and swapped in (module docstring), so
    a kill at any point leaves a whole state to resume from. ``best``: the kept best weights
    (written when they are not those of the saved epoch). Call on every process.
    """
    tmp, state, old = job_dir / STATE_TMP, job_dir / STATE, job_dir / STATE_OLD
    if acc.is_main_process:
        recover_state(job_dir)  # a kill between an earlier save's renames: its new state first
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        if observers:
            states = {o.name: o.state() for o in observers}
            (tmp / OBSERVERS).write_text(json.dumps(states), encoding="utf-8")
        if best is not None and 0 < best.epoch < len(history):
            if best.weights is None:
                raise AssertionError(f"the weights of best epoch {best.epoch} were not kept")  # internal invariant
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in best.weights.items()}, str(tmp / BEST))
        partial = tmp / f"{HISTORY}.tmp"
        partial.write_text(json.dumps(history, indent=1), encoding="utf-8")
        partial.replace(tmp / HISTORY)  # last, and whole: the mark of a whole save
        if state.exists():
            state.rename(old)  # aside, not deleted in place: a kill mid-delete would leave a state without files
        tmp.rename(state)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def recover_state(job_dir: Path) -> None:
    """Put a whole ``state.tmp`` in place when a kill between the renames of ``save_state`` left no ``state``.

    Main process only. No-op when ``state`` is whole, or ``state.tmp`` is not (no ``history.json``).
    """
    tmp, state = job_dir / STATE_TMP, job_dir / STATE
    if not (state / HISTORY).exists() and (tmp / HISTORY).exists():
        shutil.rmtree(state, ignore_errors=True)
        tmp.rename(state)


def best_epoch(history: list[dict[str, Any]]) -> int:
    """The selected epoch (1-based): the first with the highest ``selection`` score; 0 for no history."""
    if not history:
        return 0
    return 1 + max(range(len(history)), key=lambda i: history[i]["selection"])


def restore_state(
    acc: Accelerator, job_dir: Path, model: Any, observers: Sequence[StepObserver] = (), keep_best: bool = True
) -> tuple[list[dict[str, Any]], BestWeights]:
    """Load ``job_dir/state`` into the prepared objects; returns (history, best weights).

    No saved state gives ([], no best yet): the job starts over. With ``keep_best``, the best
    epoch's weights are taken from the state (a copy of the loaded model when the best epoch is
    the saved one). Raises ``RunError`` naming the folder when the state cannot be loaded or
    lacks the best weights (a state saved by an older harness): delete it to restart the job.
    """
    state = job_dir / STATE
    if acc.is_main_process:
        recover_state(job_dir)
    acc.wait_for_everyone()
    if not (state / HISTORY).exists():
        return [], BestWeights()
    check_pickles(state)
    try:
        acc.load_state(str(state))
    except Exception as exc:  # noqa: BLE001 -- a damaged or mismatched state is the user's to clear
        raise RunError(
            f"cannot resume from {state}: {describe_error(exc)}; delete that folder to restart the job"
        ) from None
    if observers:
        states = _read_json(state, OBSERVERS, dict) if (state / OBSERVERS).exists() else {}
        for observer in observers:
            if observer.name in states:
                observer.load_state(states[observer.name])
    history = _read_history(state)
    best = BestWeights()
    if keep_best and history:
        epoch = best_epoch(history)
        if epoch == len(history):
            best.keep(model, acc, epoch, copy=True)
        elif (state / BEST).exists():
            from safetensors.torch import load_file

            best = BestWeights(epoch, load_file(str(state / BEST)))
        else:
            raise RunError(
                f"cannot resume from {state}: it holds no weights of the best epoch {epoch} "
                "(saved by an older harness); delete that folder to restart the job"
            )
    return history, best


def check_pickles(state: Path) -> None:
    """Refuse a state folder whose torch pickles (``*.bin``, ``*.pkl``, ``*.pt``) a weights-only load rejects.

    ``accelerate.load_state`` reads the optimizer, scheduler and sampler files with
    ``weights_only=True`` (tensors, plain containers and the numpy types of its allowlist), but
    it swallows a failure to read the RNG states (``random_states_<rank>.pkl``) and carries on.
    Each file is read here first, with the same loader, so that a file holding anything else (a
    tampered state, one not written by the harness) is one ``RunError`` naming it, and nothing in
    it is ever executed. Costs one extra read of the state (the optimizer: twice the model's size).
    """
    import pickle
    import warnings

    from accelerate.utils import load

    for file in sorted(p for p in state.iterdir() if p.suffix in (".bin", ".pkl", ".pt")):
        try:
            with warnings.catch_warnings():  # torch warns about a pickle protocol it did not write: the error says it
                warnings.simplefilter("ignore")
                load(file, map_location="cpu")
        except pickle.UnpicklingError:
            raise RunError(
                f"cannot resume from {state}: {file.name} holds Python objects that a weights-only load refuses "
                "(the harness never writes such a file: it was replaced or damaged); it was not loaded. "
                "Delete that folder to restart the job"
            ) from None
        except Exception as exc:  # noqa: BLE001 -- truncated, not a torch file, ...: one line either way
            raise RunError(
                f"cannot resume from {state}: {file.name} cannot be read ({describe_error(exc)}); "
                "delete that folder to restart the job"
            ) from None


def _read_history(state: Path) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = _read_json(state, HISTORY, list)
    if not all(isinstance(r, dict) and "selection" in r for r in history):
        raise RunError(
            f"cannot resume from {state}: {HISTORY} is damaged (an epoch record without 'selection'); "
            "delete that folder to restart the job"
        )
    return history


def _read_json(state: Path, name: str, kind: type) -> Any:
    """A JSON file of the state, of type ``kind``; ``RunError`` naming it when damaged (a killed write, an edit)."""
    try:
        value = json.loads(read_text(state / name, RunError))
    except json.JSONDecodeError as exc:
        raise RunError(
            f"cannot resume from {state}: {name} is damaged (not JSON: {exc.msg}, line {exc.lineno}); "
            "delete that folder to restart the job"
        ) from None
    if not isinstance(value, kind):
        raise RunError(
            f"cannot resume from {state}: {name} is damaged (not a JSON {kind.__name__}); "
            "delete that folder to restart the job"
        )
    return value


def discard_state(job_dir: Path) -> None:
    """Delete a job's resume state (also a half-written one): a finished job keeps no optimizer state."""
    for name in (STATE, STATE_TMP, STATE_OLD):
        shutil.rmtree(job_dir / name, ignore_errors=True)
