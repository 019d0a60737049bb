"""``harness`` with one fault injected: SIGKILL at a chosen point of a run, for tests/test_faults.py.

    python tests/faults_worker.py FAULT STEPS_LOG harness-args...

``FAULT`` says where this process kills itself (``os.kill(os.getpid(), SIGKILL)``, as the OOM
killer or a preempted machine would), counting over the whole process, all jobs together:

- ``none``: no fault (the uninterrupted reference run);
- ``step:K``: right after the K-th optimizer step (1-based), before the scheduler steps;
- ``save:N``: inside the N-th resume-state save, once accelerate wrote it into ``state.tmp``;
- ``rename:NAME:N``: just before the N-th rename (``os.rename``/``os.replace``) from or to a path
  named ``NAME`` (``state.tmp``: between a save's two renames; ``best.tmp``: the job's model
  folder written, not in place; ``result.json``, ``results.json``, ``manifest.json``: the file's
  temporary copy written, not in place);
- ``publish:N``: inside the N-th job-store publication, its entry written into the store's
  ``.tmp`` folder, not yet renamed into place.

Every optimizer step is appended to ``STEPS_LOG`` as a JSON line (step, job, epoch, update,
updates per epoch), so a test can pick a kill step that is not an epoch's last.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def kill(why: str) -> None:
    print(f"faults_worker: SIGKILL {why}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


class Counter:
    def __init__(self, at: int) -> None:
        self.at, self.seen = at, 0

    def hit(self) -> bool:
        self.seen += 1
        return self.seen == self.at


def install(fault: str, steps_log: Path) -> None:
    import accelerate

    from harness.protocol import jobstore
    from harness.training import runner

    kind, _, rest = fault.partition(":")
    where: dict[str, Any] = {"job": "", "epoch": 0, "update": 0, "updates": 0}
    steps = Counter(int(rest) if kind == "step" else 0)

    run_job = runner.run_job

    def tracked_run_job(setup: Any, job_dir: Path, *args: Any, **kwargs: Any) -> Any:
        where["job"] = job_dir.name
        return run_job(setup, job_dir, *args, **kwargs)

    train_epoch = runner.train_epoch

    def tracked_train_epoch(training: Any, epoch: int, seed: int) -> float:
        where["epoch"] = epoch + 1
        where["update"] = 0
        return train_epoch(training, epoch, seed)

    windows = runner.accumulation_windows

    def tracked_windows(micro_steps: int, accum: int) -> list[int]:
        out = windows(micro_steps, accum)
        where["updates"] = len(out)  # the last call before an epoch's steps is that epoch's
        return out

    stepping = runner.stepping_optimizer

    class Stepper:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def step(self) -> None:
            self.inner.step()
            where["update"] += 1
            line = {"step": steps.seen + 1, **where}
            with open(steps_log, "a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
            if steps.hit():
                kill(f"after optimizer step {json.dumps(line)}")

        def zero_grad(self, *args: Any, **kwargs: Any) -> None:
            self.inner.zero_grad(*args, **kwargs)

    runner.run_job = tracked_run_job
    runner.train_epoch = tracked_train_epoch
    runner.accumulation_windows = tracked_windows
    runner.stepping_optimizer = lambda optimizer, acc: Stepper(stepping(optimizer, acc))

    if kind == "save":
        saves, save_state = Counter(int(rest)), accelerate.Accelerator.save_state

        def killing_save_state(self: Any, output_dir: Any = None, **kwargs: Any) -> Any:
            out = save_state(self, output_dir, **kwargs)
            if saves.hit():
                kill(f"inside resume save {saves.at}, {output_dir} written")
            return out

        accelerate.Accelerator.save_state = killing_save_state  # type: ignore[method-assign]
    elif kind == "rename":
        name, _, nth = rest.partition(":")
        renames = Counter(int(nth))
        os_rename, os_replace = os.rename, os.replace

        def check(src: Any, dst: Any) -> None:
            if name in (Path(src).name, Path(dst).name) and renames.hit():
                kill(f"before renaming {src} to {dst}")

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            check(src, dst)
            os_rename(src, dst, *args, **kwargs)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            check(src, dst)
            os_replace(src, dst, *args, **kwargs)

        os.rename, os.replace = rename, replace
    elif kind == "publish":
        publishes, write_entry = Counter(int(rest)), jobstore._write_entry

        def killing_write_entry(tmp: Path, *args: Any, **kwargs: Any) -> Any:
            out = write_entry(tmp, *args, **kwargs)
            if publishes.hit():
                kill(f"publishing to the job store, entry written into {tmp}")
            return out

        jobstore._write_entry = killing_write_entry
    elif kind not in ("none", "step"):
        raise SystemExit(f"faults_worker: unknown fault {fault!r}")


def main() -> int:
    fault, steps_log, *argv = sys.argv[1:]
    install(fault, Path(steps_log))
    from harness.cli import main as harness_main

    return harness_main(argv)


if __name__ == "__main__":
    sys.exit(main())
