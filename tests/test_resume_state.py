"""The resume state's cadence and contents (harness.training.resume); exact resume of whole jobs is
tested in test_correctness.py and test_run.py."""

from __future__ import annotations

import pytest
import torch

from harness.errors import RunError
from harness.training.resume import BestWeights, StateCadence, best_epoch, discard_state, restore_state, save_state


class OneProcess:
    num_processes = 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_state_is_due_once_the_minutes_have_passed_since_the_start_or_the_last_save():
    clock = Clock()
    cadence = StateCadence(10, clock)
    clock.now += 599.0
    assert not cadence.due(OneProcess())
    clock.now += 1.0
    assert cadence.due(OneProcess())
    cadence.saved()
    assert not cadence.due(OneProcess())
    clock.now += 600.0
    assert cadence.due(OneProcess())


def test_zero_minutes_saves_after_every_epoch():
    clock = Clock()
    cadence = StateCadence(0, clock)
    assert cadence.due(OneProcess())
    cadence.saved()
    assert cadence.due(OneProcess())


def test_the_best_epoch_is_the_first_with_the_highest_selection_score():
    assert best_epoch([]) == 0
    assert best_epoch([{"selection": s} for s in (0.5, 0.7, 0.6, 0.7)]) == 2


@pytest.fixture
def prepared():
    from accelerate import Accelerator

    torch.manual_seed(0)
    acc = Accelerator(cpu=True)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = acc.prepare(model, optimizer)
    yield acc, model, optimizer
    acc.free_memory()


def _step(model, optimizer) -> None:
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def test_kept_best_weights_are_a_copy_the_next_epoch_does_not_change(prepared):
    acc, model, optimizer = prepared
    best = BestWeights()
    best.keep(model, acc, 1, copy=True)
    epoch_one = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, optimizer)
    assert not torch.equal(model.weight, epoch_one["weight"])
    best.load_into(model, acc)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in epoch_one.items())
    best.keep(model, acc, 2, copy=False)  # the last epoch: its weights are the model's
    assert best.weights is None and best.epoch == 2


def test_a_state_saved_after_the_best_epoch_carries_its_weights(prepared, tmp_path):
    acc, model, optimizer = prepared
    best = BestWeights()
    best.keep(model, acc, 1, copy=True)
    epoch_one = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, optimizer)
    history = [{"epoch": 1, "selection": 0.9}, {"epoch": 2, "selection": 0.5}]
    save_state(acc, tmp_path, history, (), best)
    files = {p.name for p in (tmp_path / "state").iterdir()}
    assert {"best.safetensors", "history.json", "optimizer.bin", "model.safetensors"} <= files
    _step(model, optimizer)  # the state is on disk; training goes on, then the process dies
    restored, kept = restore_state(acc, tmp_path, model, (), keep_best=True)
    assert restored == history and kept.epoch == 1 and kept.weights is not None
    assert all(torch.equal(kept.weights[k], v) for k, v in epoch_one.items())
    (tmp_path / "state" / "best.safetensors").unlink()  # a state of an older harness: no best weights
    with pytest.raises(RunError, match=r"holds no weights of the best epoch 1 .*delete that folder"):
        restore_state(acc, tmp_path, model, (), keep_best=True)
    discard_state(tmp_path)
    assert not (tmp_path / "state").exists()
    assert restore_state(acc, tmp_path, model, (), keep_best=True)[0] == []  # nothing saved: start over


def test_a_state_saved_at_the_best_epoch_does_not_write_the_weights_twice(prepared, tmp_path):
    acc, model, optimizer = prepared
    best = BestWeights()
    _step(model, optimizer)
    best.keep(model, acc, 1, copy=True)
    save_state(acc, tmp_path, [{"epoch": 1, "selection": 0.9}], (), best)
    assert not (tmp_path / "state" / "best.safetensors").exists()  # model.safetensors holds them
    restored, kept = restore_state(acc, tmp_path, model, (), keep_best=True)
    assert kept.epoch == 1 and all(torch.equal(kept.weights[k], v) for k, v in model.state_dict().items())


def test_a_save_killed_between_its_renames_resumes_from_the_new_state(prepared, tmp_path, monkeypatch):
    """``state`` moved aside, the whole new one still in ``state.tmp``: restore puts it in place."""
    from pathlib import Path

    from harness.protocol.rundir import trained_anything

    acc, model, optimizer = prepared
    job = tmp_path / "jobs" / "stl-0-x"
    job.mkdir(parents=True)
    first, second = [{"epoch": 1, "selection": 0.1}], [{"epoch": 1, "selection": 0.1}, {"epoch": 2, "selection": 0.2}]
    save_state(acc, job, first)
    _step(model, optimizer)
    rename = Path.rename

    def killed(self, target):
        if self.name == "state.tmp":
            raise KeyboardInterrupt("killed")  # the process ends here
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", killed)
    with pytest.raises(KeyboardInterrupt):
        save_state(acc, job, second)
    monkeypatch.setattr(Path, "rename", rename)
    assert not (job / "state").exists() and (job / "state.old" / "history.json").exists()
    assert trained_anything(tmp_path)  # a run holding only that is still a run to resume, not to start anew
    restored, _ = restore_state(acc, job, model, (), keep_best=False)
    assert restored == second and (job / "state" / "history.json").exists()
    save_state(acc, job, second)  # the next save clears the leftovers
    assert sorted(p.name for p in job.iterdir()) == ["state"]
