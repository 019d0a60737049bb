"""Files and locks that several users of one machine or store share: permissions follow the umask.

``mkstemp``/``mkdtemp`` make files and folders private (0600/0700), ``safetensors`` writes 0600,
and ``filelock`` creates its lock files 0644: each would lock a group sharing a job store, a
cache or a leaderboard out. These helpers give them the permissions the process's umask allows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import FileLock


def current_umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def chmod_as_umask(path: Path, mode: int) -> None:
    """Give ``path`` (made private by mkstemp/mkdtemp) the permissions ``mode`` under the process's umask."""
    os.chmod(path, mode & ~current_umask())


def shared_lock(path: Path) -> FileLock:
    """An OS file lock (``filelock``, ``flock`` on POSIX) at ``path``, its file as readable and writable as
    the umask allows; not thread-local, so one thread may take it and another release it."""
    from filelock import FileLock

    return FileLock(str(path), thread_local=False, mode=0o666 & ~current_umask())
