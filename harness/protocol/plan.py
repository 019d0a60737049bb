"""What a run trains, as plain data: jobs (kind, tasks, seed) and the plan that lists them.

No torch and no live objects here: a job is a small frozen value with a content key, so the
plan can be made, inspected and hashed without importing the training stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.config import RunConfig
from harness.errors import ConfigError


@dataclass(frozen=True)
class Job:
    """One training: ``kind`` is "stl" or "mtl"; STL is simply a job with one task."""

    kind: str
    tasks: tuple[str, ...]
    seed: int

    def describe(self) -> str:
        tasks = "+".join(self.tasks) if len(self.tasks) <= 3 else f"{len(self.tasks)} tasks"
        return f"{self.kind.upper()} {tasks} seed {self.seed}"

    def key(self, config_hash: str) -> str:
        """The job's folder name: kind, seed, readable task names, and a hash of everything.

        ``stl-0-cervical.disc-<hash>``, ``mtl-0-rte+stsb-<hash>``, ``mtl-0-16tasks-<hash>``; the
        names are shortened to 48 characters (the hash keeps the key unique).
        """
        text = json.dumps([self.kind, self.tasks, self.seed, config_hash])
        names = "+".join(self.tasks)
        if len(names) > 48:
            names = f"{len(self.tasks)}tasks" if len(self.tasks) > 1 else names[:48]
        return f"{self.kind}-{self.seed}-{names}-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...]  # every selected task gets an STL job per seed
    group: tuple[str, ...]  # the MTL group (one job per seed)
    seeds: tuple[int, ...]

    def jobs(self) -> list[Job]:
        jobs = []
        for seed in self.seeds:
            jobs += [Job("stl", (t,), seed) for t in self.tasks]
            jobs.append(Job("mtl", self.group, seed))
        return jobs


def make_plan(selected: Sequence[str], group: Sequence[str] | None, cfg: RunConfig) -> Plan:
    group = list(group) if group else list(selected)
    outside = [t for t in group if t not in selected]
    if outside:
        raise ConfigError(f"--group names task(s) not selected with --tasks: {', '.join(outside)}")
    if len(group) < 2:
        raise ConfigError("an MTL group needs at least two tasks; select more with --tasks or --group")
    if len(set(group)) != len(group):
        raise ConfigError(f"--group lists a task twice: {', '.join(group)}")
    return Plan(tuple(selected), tuple(group), tuple(cfg.seed_list))
