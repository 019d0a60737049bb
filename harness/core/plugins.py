"""The plugin manager: the one global of harness, and the registries built from it.

A plugin's fault stays that plugin's. A plugin that fails to import (any exception, even
``SystemExit``; never ``KeyboardInterrupt``), implements a hook the core does not know, or
raises in a registration hook is recorded in ``PluginManager.failed`` by name, with a one-line
error, and unregistered: what it registered is discarded, the other plugins work, and a command
that needs it fails with one line (``PluginManager.require``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.core.guards import GuardedCall, GuardedLoader, describe_error
from harness.core.registry import Registry, unknown_name_message
from harness.errors import HarnessError, PluginError, RegistryError

ENTRY_POINT_GROUP = "harness"
DEFAULT_PLUGIN = "harness.default"
#: The core's own sub-commands: a plugin the CLI registers (``harness.commands``), so that the
#: plugin layer never imports the command layer above it.
COMMANDS_PLUGIN = "harness.commands"
CORE_PLUGINS = (DEFAULT_PLUGIN, COMMANDS_PLUGIN)
#: Set to a non-empty value to load only the plugins named with ``--plugin``.
DISABLE_AUTOLOAD_ENV = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated importable modules to register as plugins without packaging them.
PLUGIN_MODULES_ENV = "HARNESS_PLUGIN_MODULES"
#: Registration hooks, in the order they are called, and the kind of object each registers.
REGISTRATION_HOOKS = (
    ("register_metrics", "metric"),
    ("register_tasks", "task"),
    ("register_groupers", "grouper"),
    ("register_predictors", "predictor"),
    ("register_input_readers", "input_reader"),
)

log = logging.getLogger("harness")


def hook_names() -> list[str]:
    """Every hook the core specifies (``harness.hookspecs``)."""
    return sorted(n for n in dir(hookspecs) if getattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec", None))


@dataclass
class PluginManager:
    """A pluggy manager plus what the loader learnt: versions, plugins that failed, plugins asked for."""

    pm: pluggy.PluginManager
    versions: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # plugin -> one-line error
    available: list[str] = field(default_factory=list)  # every installed entry-point name
    wanted: list[str] = field(default_factory=list)  # plugins a command named: their failure is an error
    raised: set[str] = field(default_factory=set)  # failed plugins whose own code raised (-v logs the traceback)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def names(self) -> list[str]:
        """Loaded plugin names, the core's first (``CORE_PLUGINS`` order), then by name: the order of hook calls."""
        names = [n for n, _ in self.pm.list_name_plugin()]
        rank = {n: i for i, n in enumerate(CORE_PLUGINS)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def impls(self, hook: str) -> list[tuple[str, Callable[..., Any]]]:
        """(plugin, function) of every loaded implementation of ``hook``, in ``names()`` order."""
        order = {n: i for i, n in enumerate(self.names())}
        impls = getattr(self.hook, hook).get_hookimpls()
        return sorted(((i.plugin_name, i.function) for i in impls), key=lambda pair: order[pair[0]])

    def call(self, name: str, hook: str, fn: Callable[..., Any], **kwargs: Any) -> bool:
        """Call plugin ``name``'s implementation of ``hook``; if it raises, fail that plugin. True on success."""
        try:
            fn(**kwargs)
        except HarnessError as exc:
            self.fail(name, str(exc), exc)
            return False
        except (Exception, SystemExit) as exc:  # noqa: BLE001 -- a plugin's fault is that plugin's failure
            self.fail(name, f"{hook} raised {describe_error(exc)}", exc)
            return False
        return True

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook (``run_started``, ``run_finished``) of every plugin, each on its own.

        A plugin whose observer raises is failed and a warning names it; the other observers and
        the run go on.
        """
        for name, fn in self.impls(hook):
            if not self.call(name, hook, fn, **kwargs):
                log.warning("plugin %r failed: %s", name, self.failed[name])

    def record(self, name: str, error: str, exc: BaseException | None = None) -> None:
        """Record that plugin ``name`` failed (the first error wins); ``exc``: its code raised (traceback at -v)."""
        self.failed.setdefault(name, error)
        if exc is not None and not isinstance(exc, HarnessError):
            self.raised.add(name)
        log.debug("plugin %r failed: %s", name, error, exc_info=exc)

    def fail(self, name: str, error: str, exc: BaseException | None = None) -> None:
        """``record`` the failure and unregister the plugin: none of its hooks runs again."""
        self.record(name, error, exc)
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)

    def require(self, names: Iterable[str]) -> None:
        """Raise if a plugin the command needs is not loaded, naming the failure or the known ones."""
        for name in names:
            if self.pm.get_plugin(name) is not None:
                continue
            if name in self.failed:
                hint = " (`harness plugins -v` shows the traceback)" if name in self.raised else ""
                raise PluginError(f"plugin {name!r} failed to load: {self.failed[name]}{hint}")
            known = sorted(set(self.available) | set(self.names()))
            raise PluginError(unknown_name_message("plugin", name, known))


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def new_manager(
    load: Iterable[str] = (),
    autoload: bool | None = None,
    entry_points: Callable[[], list[importlib.metadata.EntryPoint]] = _entry_points,
    extra: Iterable[tuple[str, object]] = (),
    core: Iterable[tuple[str, object]] = (),
) -> PluginManager:
    """Build a plugin manager: the default plugin, entry-point plugins, ``HARNESS_PLUGIN_MODULES``, ``extra``.

    ``load`` names plugins that must be loaded (``wanted``); unless auto-loading is off
    (``autoload=False`` or the environment variable ``HARNESS_DISABLE_PLUGIN_AUTOLOAD``), every
    other installed plugin is loaded too. A plugin that fails to import or implements an unknown
    hook is recorded in ``failed`` and skipped; raises ``PluginError`` only when a wanted plugin
    failed or is unknown. ``extra`` registers (name, module-or-object) pairs directly, for tests
    and embedding; ``core`` registers more of the core's own plugins right after the default one
    (the CLI passes its commands, ``COMMANDS_PLUGIN``).
    """
    from harness.core import default_plugin

    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    manager = PluginManager(pm, wanted=list(load))
    _add(manager, DEFAULT_PLUGIN, default_plugin, _version("harness"))
    for name, plugin in core:
        _add(manager, name, plugin, _version("harness"))
    for ep in entry_points():
        manager.available.append(ep.name)
        if autoload or ep.name in manager.wanted:
            plugin = _import(manager, ep.name, ep.load)
            if plugin is not None:
                _add(manager, ep.name, plugin, _version(ep.dist.name) if ep.dist else "unknown")
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGIN_MODULES_ENV, "").split(","))):
        plugin = _import(manager, module, functools.partial(importlib.import_module, module))
        if plugin is not None:
            _add(manager, module, plugin, getattr(plugin, "__version__", "unknown"))
    for name, plugin in extra:
        _add(manager, name, plugin, getattr(plugin, "__version__", "unknown"))
    manager.require(manager.wanted)
    return manager


def _import(manager: PluginManager, name: str, load: Callable[[], object]) -> object | None:
    try:
        return load()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- any import-time failure is reported, not fatal
        manager.record(name, describe_error(exc), exc)
        return None


def _add(manager: PluginManager, name: str, plugin: object, version: str) -> bool:
    """Register one plugin after checking its hooks; a problem fails that plugin only."""
    pm = manager.pm
    if (other := pm.get_name(plugin)) == name:
        return True  # the same plugin under the same name: loaded already
    if other is not None:
        manager.record(name, f"it is the same module as plugin {other!r}, which is loaded already; name it once")
        return False
    if pm.get_plugin(name) is not None:  # recorded, not failed: the plugin loaded under that name stays
        manager.record(name, f"another plugin named {name!r} is loaded already; rename one of them")
        return False
    problems = _hook_problems(pm, plugin)
    if problems:
        manager.record(name, "; ".join(problems))
        return False
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:  # e.g. a wrapper that is not a generator
        pm.unregister(plugin, name=name)
        manager.record(name, " ".join(str(exc).split()))
        return False
    manager.versions[name] = version
    return True


def _hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """Unknown hook names (with a did-you-mean) and arguments the hookspec does not pass."""
    known = hook_names()
    problems = []
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        if hook not in known:
            if not opts.get("optionalhook"):
                close = difflib.get_close_matches(hook, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"known hooks: {', '.join(known)}"
                problems.append(f"implements unknown hook {hook!r}; {hint}")
            continue
        spec_args = getattr(pm.hook, hook).spec.argnames
        impl_args = pluggy.HookImpl(plugin, "", getattr(plugin, attr), opts).argnames
        extra = [a for a in impl_args if a not in spec_args]
        if extra:
            problems.append(
                f"hook {hook!r} takes argument(s) {', '.join(extra)} that the core does not pass; "
                f"write {hook}({', '.join(spec_args)})"
            )
    return problems


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Registries:
    """The frozen registries of one run, built from one plugin manager, and the plugins that failed."""

    tasks: Registry[Any]
    metrics: Registry[Any]
    groupers: Registry[Any]
    predictors: Registry[Any]
    failed: dict[str, str] = field(default_factory=dict)  # plugin -> one-line error
    readers: Registry[Any] = field(default_factory=lambda: Registry("input reader"))  # harness predict's inputs

    def of_kind(self, kind: str) -> Registry[Any]:
        kinds = {"task": self.tasks, "metric": self.metrics, "grouper": self.groupers, "predictor": self.predictors}
        return {**kinds, "input_reader": self.readers}[kind]


Contributions = dict[str, list[tuple[str, Any]]]  # plugin -> [(kind, registered object)]


def build_registries(manager: PluginManager, require_wanted: bool = True) -> Registries:
    """Call every ``register_*`` hook plugin by plugin, recording which plugin registered what, then freeze.

    A plugin fails, and everything it registered is discarded, when a registration hook raises,
    registers a wrong object or one name twice, registers a name another plugin registers too
    (both fail, unless the other is the core's default plugin), or declares a task whose metric
    is unknown or cannot score the task's problem type, or whose input reader no plugin
    registers. Failures land in ``manager.failed``; with ``require_wanted``, a failure of a plugin
    in ``manager.wanted`` raises ``PluginError``. Plugin code the core calls later (loaders,
    metric, grouper, predictor and input reader functions) is
    guarded: an exception there becomes one ``HarnessError`` line naming the plugin.
    """
    contributed: Contributions = {}
    withdrawn: Contributions = {}  # what failed plugins registered before failing
    for name in manager.names():
        items, ok = _collect(manager, name)
        (contributed if ok else withdrawn)[name] = items
    for check in (_conflicts, _bad_metric_uses, _bad_reader_uses):
        while failures := check(contributed):  # dropping a plugin's metrics can break another's tasks
            for name, error in failures.items():
                manager.fail(name, error)
                withdrawn[name] = contributed.pop(name)
    registries = Registries(
        Registry("task"), Registry("metric"), Registry("grouper"), Registry("predictor"), failed=dict(manager.failed)
    )
    for plugin, items in contributed.items():
        for kind, obj in items:
            registries.of_kind(kind).add(obj.name, _guarded(kind, obj, plugin), plugin)
    for plugin, items in withdrawn.items():
        for kind, obj in items:
            registries.of_kind(kind).withdraw(obj.name, f"plugin {plugin!r} failed to load: {manager.failed[plugin]}")
    for kind in ("task", "metric", "grouper", "predictor", "input_reader"):
        registries.of_kind(kind).freeze(failed_plugins=sorted(manager.failed))
    if require_wanted:
        manager.require(manager.wanted)
    return registries


def _collect(manager: PluginManager, name: str) -> tuple[list[tuple[str, Any]], bool]:
    """What plugin ``name`` registers, and whether every registration hook of it succeeded."""
    from harness.api import Grouper, InputReader, Metric, Predictor, TaskSpec

    classes: dict[str, type[Any]] = {
        "task": TaskSpec,
        "metric": Metric,
        "grouper": Grouper,
        "predictor": Predictor,
        "input_reader": InputReader,
    }
    items: list[tuple[str, Any]] = []
    for hook, kind in REGISTRATION_HOOKS:
        for plugin, fn in manager.impls(hook):
            if plugin == name and not manager.call(name, hook, fn, register=_registrar(items, kind, classes[kind])):
                return items, False
    return items, True


def _registrar(items: list[tuple[str, Any]], kind: str, cls: type[Any]) -> Callable[[Any], None]:
    def register(obj: Any) -> None:
        if not isinstance(obj, cls):
            what = kind.replace("_", " ")
            raise PluginError(f"registered {type(obj).__name__} with {what}s; pass a harness.{cls.__name__}")
        if (kind, obj.name) in {(k, o.name) for k, o in items}:
            raise RegistryError(f"registers {kind.replace('_', ' ')} {obj.name!r} twice; rename one of them")
        items.append((kind, obj))

    return register


def _conflicts(contributed: Contributions) -> dict[str, str]:
    """Plugins that register a name another plugin registers too (the default plugin keeps its names)."""
    owners: dict[tuple[str, str], list[str]] = {}
    for plugin, items in contributed.items():
        for kind, obj in items:
            owners.setdefault((kind, obj.name), []).append(plugin)
    failures: dict[str, str] = {}
    for (kind, name), plugins in owners.items():
        for plugin in plugins if len(plugins) > 1 else []:
            if plugin == DEFAULT_PLUGIN:
                continue
            other = next(p for p in plugins if p != plugin)  # the default plugin, if it is one of them
            where = "is built in" if other == DEFAULT_PLUGIN else f"is registered by plugin {other!r} too"
            failures.setdefault(
                plugin, f"{kind.replace('_', ' ')} {name!r} {where}; rename one of them or uninstall one plugin"
            )
    return failures


def _bad_metric_uses(contributed: Contributions) -> dict[str, str]:
    """Plugins with a task whose metric is unknown or cannot score the task's problem type."""
    metrics = {obj.name: obj for items in contributed.values() for kind, obj in items if kind == "metric"}
    failures: dict[str, str] = {}
    for plugin, items in contributed.items():
        for task in (obj for kind, obj in items if kind == "task"):
            for name in task.metrics:
                if name not in metrics:
                    error = f"task {task.name!r} uses " + unknown_name_message("metric", name, sorted(metrics))
                elif not metrics[name].supports(task.problem_type):
                    fits = [m for m in sorted(metrics) if metrics[m].supports(task.problem_type)]
                    error = (
                        f"task {task.name!r} ({task.problem_type.value}) uses metric {name!r}, which scores only "
                        f"{', '.join(map(str, metrics[name].problem_types))}; "
                        f"metrics for {task.problem_type.value}: {', '.join(fits) or 'none'}"
                    )
                else:
                    continue
                failures.setdefault(plugin, error)
    return failures


def _bad_reader_uses(contributed: Contributions) -> dict[str, str]:
    """Plugins with a task whose ``input_reader`` no plugin registers."""
    readers = sorted({obj.name for items in contributed.values() for kind, obj in items if kind == "input_reader"})
    failures: dict[str, str] = {}
    for plugin, items in contributed.items():
        for task in (obj for kind, obj in items if kind == "task"):
            if task.input_reader not in readers:
                message = unknown_name_message("input reader", task.input_reader, readers)
                failures.setdefault(plugin, f"task {task.name!r} uses {message}")
    return failures


def _guarded(kind: str, obj: Any, plugin: str) -> Any:
    """The object with its plugin code wrapped, so a raw exception becomes one line naming the plugin."""
    if kind == "task":
        return dataclasses.replace(obj, loader=GuardedLoader(obj.loader, obj.name, plugin))
    return dataclasses.replace(obj, fn=GuardedCall(obj.fn, f"{kind.replace('_', ' ')} {obj.name!r}", plugin))
