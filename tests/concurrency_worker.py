"""Processes for ``test_concurrency``: the ``harness`` CLI with a start barrier, in loops, or recording a run.

``python tests/concurrency_worker.py MODE DIR N -- ARGS...``

- ``tokenize``: ``harness ARGS`` whose first tokenization waits until N processes have reached
  theirs (files in DIR), so they all tokenize at once, each with the cache as it found it;
- ``prepare``: ``harness ARGS`` whose run-directory preparation waits the same way;
- ``once``: ``harness ARGS`` (N unused);
- ``loop``: ``harness ARGS`` again and again (a pause between) until the file DIR/stop exists, then once more;
- ``record``: after the barrier, ``record_run(ARGS[0], ARGS[1])`` (run directory, leaderboard).

Each process writes ``DIR/<pid>.json``: when it reached the barrier and passed it, whether the
tokenization cache held any file then, the start and end of the barriered call, exit codes.
The process exits with the (last) command's exit code.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TIMEOUT = 300.0  # seconds a process waits at the barrier for the others
PAUSE = 0.5  # seconds between two commands of a loop


def barrier(folder: Path, parties: int, note: dict[str, Any]) -> None:
    """Arrive (a file in ``folder``), then wait until ``parties`` processes have arrived."""
    note["arrived"] = time.time()
    (folder / f"{os.getpid()}.arrived").write_text("")
    while len(list(folder.glob("*.arrived"))) < parties:
        if time.time() - note["arrived"] > TIMEOUT:
            raise SystemExit(f"barrier {folder}: {parties} processes never arrived")
        time.sleep(0.005)
    note["released"] = time.time()


def wrap_once(module: Any, name: str, before: Any, note: dict[str, Any]) -> None:
    """Make ``module.name`` (and the modules that imported it by name) call ``before()`` on its first call."""
    original = getattr(module, name)
    first = [True]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not first[0]:
            return original(*args, **kwargs)
        first[0] = False
        before()
        note["start"] = time.time()
        try:
            return original(*args, **kwargs)
        finally:
            note["end"] = time.time()

    for mod in list(sys.modules.values()):
        if getattr(mod, name, None) is original and getattr(mod, "__name__", "").startswith("harness"):
            setattr(mod, name, wrapped)


def main() -> int:
    mode, folder, parties, sep, *args = sys.argv[1:]
    assert sep == "--", sys.argv
    folder_path, n = Path(folder), int(parties)
    folder_path.mkdir(parents=True, exist_ok=True)
    note: dict[str, Any] = {"mode": mode, "pid": os.getpid(), "began": time.time()}
    from harness.cli import main as cli

    try:
        if mode == "tokenize":
            import harness.analyses.probe
            import harness.data.streams as streams
            import harness.training.runner  # noqa: F401 -- imports tokenize by name: wrapped there too

            def cold() -> None:
                note["cache_files"] = len(list((streams.cache_dir() / "tokenized").glob("*/*.arrow")))
                barrier(folder_path, n, note)

            wrap_once(streams, "tokenize", cold, note)
            note["codes"] = [cli(args)]
        elif mode == "prepare":
            from harness.protocol import rundir

            wrap_once(rundir, "prepare", lambda: barrier(folder_path, n, note), note)
            note["codes"] = [cli(args)]
        elif mode == "once":
            note["codes"] = [cli(args)]
        elif mode == "loop":
            note["codes"] = []
            while True:
                stop = (folder_path / "stop").exists()
                note["codes"].append(cli(args))
                if stop:
                    break
                time.sleep(PAUSE)
        elif mode == "record":
            from harness.commands.leaderboard import record_run

            barrier(folder_path, n, note)
            path, new = record_run(Path(args[0]), Path(args[1]))
            note.update(path=str(path), new=new, codes=[0])
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        note["ended"] = time.time()
        (folder_path / f"{os.getpid()}.json").write_text(json.dumps(note))
    return max(note["codes"], default=0)


if __name__ == "__main__":
    sys.exit(main())
