"""Partitions of tasks: validation, canonical order, enumeration, and the input checks the groupers share.

A partition is ``list[list[str]]``: every selected task exactly once, no empty group. Its
canonical form lists the tasks of a group in the given task order and orders the groups by
their first task, so two groupers that agree give equal lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from harness.errors import AnalysisError, ConfigError, PluginError

Partition = list[list[str]]


def check_tasks(tasks: Sequence[str]) -> list[str]:
    """The task names as a list; ``ConfigError`` when there are none or one is repeated."""
    names = list(tasks)
    if not names:
        raise ConfigError("grouping needs at least one task; got none")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"task {name!r} is listed twice in the tasks to group; list each task once")
        seen.add(name)
    return names


def check_matrix(matrix: np.ndarray, tasks: Sequence[str], what: str, *, unmeasured_nan: bool = False) -> np.ndarray:
    """``matrix`` as float64 [T, T] for ``tasks``; ``ConfigError`` on shape, ``AnalysisError`` on bad entries.

    By default every entry must be finite. With ``unmeasured_nan=True`` the diagonal is ignored
    and an off-diagonal NaN marks an unmeasured pair; +-inf is still an error.
    """
    m = np.asarray(matrix, dtype=np.float64)
    t = len(tasks)
    if m.shape != (t, t):
        raise ConfigError(f"{what} has shape {m.shape} but there are {t} tasks; pass a [{t}, {t}] matrix in task order")
    off = ~np.eye(t, dtype=bool)
    bad = (np.isinf(m) & off) if unmeasured_nan else ~np.isfinite(m)
    if np.any(bad):
        i, j = np.argwhere(bad)[0]
        fix = "use a finite value, or NaN if unmeasured" if unmeasured_nan else "every entry must be finite"
        raise AnalysisError(f"{what}[{tasks[i]!r}, {tasks[j]!r}] is {m[i, j]}; {fix}")
    return m


def canonical(groups: Sequence[Sequence[str]], tasks: Sequence[str]) -> Partition:
    """Tasks of each group in task order, groups ordered by their first task. Assumes a valid partition."""
    position = {name: k for k, name in enumerate(tasks)}
    ordered = [sorted(group, key=position.__getitem__) for group in groups]
    return sorted(ordered, key=lambda group: position[group[0]])


def partition_problem(partition: object, tasks: Sequence[str]) -> str | None:
    """The first reason ``partition`` is not a partition of ``tasks`` (unique names), or None when it is."""
    known = set(tasks)
    where: dict[str, int] = {}
    if isinstance(partition, str) or not isinstance(partition, Sequence):
        return f"got {type(partition).__name__}, not a list of groups; return list[list[str]]"
    for k, group in enumerate(partition):
        if isinstance(group, str) or not isinstance(group, Sequence):
            return f"group {k} is {group!r}, not a list of task names; return list[list[str]]"
        if not group:
            return f"group {k} is empty; drop empty groups"
        for name in group:
            if name not in known:
                return f"group {k} names unknown task {name!r}; choose from {', '.join(map(str, tasks))}"
            if name in where:
                again = "again in it" if where[name] == k else f"again in group {k}"
                return f"task {name!r} is in group {where[name]} and {again}; put each task in one group once"
            where[name] = k
    missing = [name for name in tasks if name not in where]
    if missing:
        return f"task {missing[0]!r} is in no group; every selected task needs exactly one group"
    return None


def check_partition(partition: Sequence[Sequence[str]], tasks: Sequence[str], source: str) -> Partition:
    """Validate that ``partition`` (from ``source``, e.g. "grouper 'x' of plugin 'y'") partitions ``tasks``.

    Returns the canonical form. Raises ``PluginError`` naming ``source`` and the first problem:
    not a list of groups, an empty group, an unknown task, a task twice (in two groups or in
    one) or a task in no group; ``ConfigError`` when ``tasks`` itself is empty or repeats a name.
    """
    names = check_tasks(tasks)
    problem = partition_problem(partition, names)
    if problem is not None:
        raise PluginError(f"{source}: {problem}")
    return canonical(partition, names)


def set_partitions(n: int, max_blocks: int | None = None) -> Iterator[tuple[int, ...]]:
    """All set partitions of ``n`` items as restricted-growth strings, in lexicographic order.

    A string ``a`` has ``a[0] = 0`` and ``a[k] <= max(a[:k]) + 1``; item k is in block ``a[k]``.
    There are Bell(n) of them (1, 1, 2, 5, 15, 52, ... for n = 0, 1, 2, ...); with ``max_blocks``
    only those with at most that many blocks (a sum of Stirling numbers of the second kind).
    The first one puts every item in one block.
    """
    if n < 0:
        raise ConfigError(f"cannot partition {n} items; n must be >= 0")
    cap = n if max_blocks is None else max_blocks
    if n == 0:
        yield ()
        return
    if cap < 1:
        return
    labels = [0] * n

    def extend(k: int, used: int) -> Iterator[tuple[int, ...]]:
        if k == n:
            yield tuple(labels)
            return
        for block in range(min(used + 1, cap)):
            labels[k] = block
            yield from extend(k + 1, max(used, block + 1))

    yield from extend(1, 1)


def groups_of(labels: Sequence[int], tasks: Sequence[str]) -> Partition:
    """The partition a restricted-growth string describes, in canonical order (for task-ordered labels)."""
    groups: Partition = [[] for _ in range(max(labels) + 1)]
    for name, block in zip(tasks, labels, strict=True):
        groups[block].append(name)
    return groups
