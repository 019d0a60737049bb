"""What a run trains, as plain data: job specs and the phased plan that lists them.

No torch and no live objects here. A ``JobSpec`` holds everything ``execute`` needs to rebuild
a job in any process (task names, seed, the frozen config, the loader context, the plugins to
load): it pickles, and its ``key`` is a content hash, so a finished job is found again and
never run twice, whichever executor ran it.

The protocol's stages, in order (``STAGES``); each needs only the ones before it:

- ``stl``: one STL model per task and seed; each extracts its layer features on the probe set
  (representation similarity, CKA).
- ``init``: per seed, the untrained model with every task's head: gradient alignment at the
  starting encoder and the untrained encoder's features (CKA against the untrained model).
- ``all``: the MTL model of the whole group (``--group``, default every task), with the
  gradient-alignment and TAG observers during training.
- ``pairs``: an MTL model for every pair of tasks (``--pairs``): the measured pair gaps.
- ``groups``: an MTL model for every group the groupers propose (predictors computed first).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.config import RunConfig
from harness.errors import ConfigError

STAGES = ("stl", "init", "all", "pairs", "groups")
DEFAULT_STAGES = ("stl", "init", "all", "groups")  # --pairs adds "pairs"
KINDS = ("stl", "mtl", "init")


@dataclass(frozen=True)
class LoadSpec:
    """The loader context as plain data (``harness.api.LoadContext`` rebuilt from it)."""

    data_dir: str | None = None
    seed: int = 0
    profile: str = "default"
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, ctx: Any) -> LoadSpec:
        data = None if ctx.data_dir is None else str(ctx.data_dir)
        return cls(data, ctx.seed, ctx.profile, tuple(sorted(ctx.options.items())))

    def context(self) -> Any:
        from harness.api import LoadContext

        data = None if self.data_dir is None else Path(self.data_dir)
        return LoadContext(data_dir=data, seed=self.seed, profile=self.profile, options=dict(self.options))


@dataclass(frozen=True)
class PluginSpec:
    """Which plugins a job loads: the wanted names, ``--tasks-dir`` cards, ``HARNESS_PLUGIN_MODULES``."""

    wanted: tuple[str, ...] = ()
    tasks_dir: str | None = None
    modules: str = ""


@dataclass(frozen=True)
class JobSpec:
    """One job: ``kind`` "stl" (one task), "mtl" (several) or "init" (no training: measurements
    of the untrained model with every task's head on the probe set).

    ``probe`` lists the tasks whose dev rows make the probe set (empty: no probe); ``features``
    asks for the layer features on it after training; ``observe`` attaches the gradient-alignment
    and TAG observers during training.
    """

    kind: str
    tasks: tuple[str, ...]
    seed: int
    config: RunConfig
    load: LoadSpec = field(default_factory=LoadSpec)
    plugins: PluginSpec = field(default_factory=PluginSpec)
    probe: tuple[str, ...] = ()
    features: bool = False
    observe: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"job kind {self.kind!r} is not one of {', '.join(KINDS)}")

    def describe(self) -> str:
        tasks = "+".join(self.tasks) if len(self.tasks) <= 3 else f"{len(self.tasks)} tasks"
        extra = " (+ gradient/TAG observers)" if self.observe else ""
        return f"{self.kind.upper()} {tasks} seed {self.seed}{extra}"

    def content(self) -> dict[str, Any]:
        """Everything that changes what the job computes (not the plugins' load order)."""
        return {
            "kind": self.kind,
            "tasks": list(self.tasks),
            "seed": self.seed,
            "config": self.config.training_hash(),
            "load": [self.load.data_dir, self.load.seed, self.load.profile, list(map(list, self.load.options))],
            "probe": list(self.probe),
            "features": self.features,
            "observe": self.observe,
        }

    def key(self) -> str:
        """The job's folder name: kind, seed, readable task names and a content hash.

        ``stl-0-cervical.disc-<hash>``, ``mtl-0-rte+stsb-<hash>``, ``mtl-0-16tasks-<hash>``; the
        names are shortened to 48 characters (the hash keeps the key unique).
        """
        digest = hashlib.sha256(json.dumps(self.content(), sort_keys=True).encode()).hexdigest()[:12]
        names = "+".join(self.tasks) if self.kind != "init" else f"{len(self.tasks)}tasks"
        if len(names) > 48:
            names = f"{len(self.tasks)}tasks" if len(self.tasks) > 1 else names[:48]
        return f"{self.kind}-{self.seed}-{names}-{digest}"


@dataclass(frozen=True)
class Plan:
    """The phased plan of one run: selected tasks, the all-task group, seeds, stages, groupers."""

    tasks: tuple[str, ...]
    group: tuple[str, ...]  # the "all" stage's MTL group
    seeds: tuple[int, ...]
    stages: tuple[str, ...]
    groupers: tuple[str, ...]
    config: RunConfig
    load: LoadSpec = field(default_factory=LoadSpec)
    plugins: PluginSpec = field(default_factory=PluginSpec)

    def _job(self, kind: str, tasks: Sequence[str], seed: int, **flags: Any) -> JobSpec:
        return JobSpec(kind, tuple(tasks), seed, self.config, self.load, self.plugins, **flags)

    def stage_jobs(self, stage: str, groups: Sequence[Sequence[str]] = ()) -> list[JobSpec]:
        """The jobs of one stage, seed-major; ``groups`` are the groupers' groups (stage "groups")."""
        if stage not in self.stages:
            return []
        probe = self.tasks  # one probe set for every model: STL features, init and training gradients
        jobs: list[JobSpec] = []
        for seed in self.seeds:
            if stage == "stl":
                jobs += [self._job("stl", (t,), seed, probe=probe, features=bool(probe)) for t in self.tasks]
            elif stage == "init":
                jobs.append(self._job("init", self.tasks, seed, probe=self.tasks))
            elif stage == "all":
                jobs.append(self._job("mtl", self.group, seed, probe=probe, observe=bool(probe)))
            elif stage == "pairs":
                jobs += [self._job("mtl", pair, seed) for pair in itertools.combinations(self.tasks, 2)]
            elif stage == "groups":
                jobs += [self._job("mtl", g, seed) for g in groups if len(g) > 1]
        return jobs

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "group": list(self.group),
            "seeds": list(self.seeds),
            "stages": list(self.stages),
            "groupers": list(self.groupers),
        }


def parse_stages(text: str | None, pairs: bool) -> tuple[str, ...]:
    """``--stages a,b`` (in protocol order) or the default stages; ``pairs`` adds "pairs".

    The caller passes ``pairs`` true for an explicit ``--pairs`` flag; a profile's or config's
    ``pairs`` key only counts when ``--stages`` is not given (explicit stages are the stages).
    """
    if text is None:
        chosen = set(DEFAULT_STAGES)
    else:
        chosen = {s.strip() for s in text.split(",") if s.strip()}
        unknown = sorted(chosen - set(STAGES))
        if unknown:
            raise ConfigError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose among {', '.join(STAGES)}")
        if "stl" not in chosen:
            raise ConfigError("--stages must include stl: every gap is measured against the STL models")
    if pairs:
        chosen.add("pairs")
    return tuple(s for s in STAGES if s in chosen)


def make_plan(
    selected: Sequence[str],
    group: Sequence[str] | None,
    cfg: RunConfig,
    *,
    stages: Sequence[str] = DEFAULT_STAGES,
    groupers: Sequence[str] = (),
    load: LoadSpec | None = None,
    plugins: PluginSpec | None = None,
) -> Plan:
    group = list(group) if group else list(selected)
    outside = [t for t in group if t not in selected]
    if outside:
        raise ConfigError(f"--group names task(s) not selected with --tasks: {', '.join(outside)}")
    if len(set(selected)) != len(selected):
        raise ConfigError(f"--tasks lists a task twice: {', '.join(selected)}")
    if len(group) < 2:
        raise ConfigError("an MTL group needs at least two tasks; select more with --tasks or --group")
    if len(set(group)) != len(group):
        raise ConfigError(f"--group lists a task twice: {', '.join(group)}")
    return Plan(
        tuple(selected),
        tuple(group),
        tuple(cfg.seed_list),
        tuple(stages),
        tuple(groupers),
        cfg,
        load or LoadSpec(),
        plugins or PluginSpec(),
    )


def plain(value: Any) -> Any:
    """JSON-ready form of mappings/sequences of plain values (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
