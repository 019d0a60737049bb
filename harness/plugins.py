"""The plugin manager: the one global of harness, and the registries built from it."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError, RegistryError
from harness.registry import Registry, unknown_name_message

ENTRY_POINT_GROUP = "harness"
DEFAULT_PLUGIN = "harness.default"
#: Set to a non-empty value to load only the plugins named with ``--plugin``.
DISABLE_AUTOLOAD_ENV = "HARNESS_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated importable modules to register as plugins without packaging them.
PLUGIN_MODULES_ENV = "HARNESS_PLUGIN_MODULES"


@dataclass
class PluginManager:
    """A pluggy manager plus what the loader learnt: versions and plugins that failed."""

    pm: pluggy.PluginManager
    versions: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # plugin -> one-line error
    available: list[str] = field(default_factory=list)  # every installed entry-point name

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def names(self) -> list[str]:
        """Loaded plugin names, default plugin first."""
        names = [n for n, _ in self.pm.list_name_plugin()]
        return sorted(names, key=lambda n: (n != DEFAULT_PLUGIN, n))

    def hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def require(self, names: Iterable[str]) -> None:
        """Raise if a plugin the command needs is not loaded, naming the failure or the known ones."""
        for name in names:
            if name in self.failed:
                raise PluginError(f"plugin {name!r} failed to load: {self.failed[name]}")
            if self.pm.get_plugin(name) is None:
                raise PluginError(unknown_name_message("plugin", name, sorted(set(self.available) | set(self.names()))))


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def new_manager(
    load: Iterable[str] = (),
    autoload: bool | None = None,
    entry_points: Callable[[], list[importlib.metadata.EntryPoint]] = _entry_points,
    extra: Iterable[tuple[str, object]] = (),
) -> PluginManager:
    """Build a plugin manager: the default plugin, then entry-point plugins.

    ``load`` names plugins that must be loaded; unless auto-loading is off (``autoload=False``
    or the environment variable ``HARNESS_DISABLE_PLUGIN_AUTOLOAD``), every other installed
    plugin is loaded too. A plugin that fails to import is recorded in ``failed`` and skipped;
    ``require`` turns that into an error for the commands that need it. ``extra`` registers
    (name, module-or-object) pairs directly, for tests and embedding.
    """
    from harness import default_plugin

    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(default_plugin, name=DEFAULT_PLUGIN)
    manager = PluginManager(pm, versions={DEFAULT_PLUGIN: _version("harness")})
    wanted = set(load)
    for ep in entry_points():
        manager.available.append(ep.name)
        if not (autoload or ep.name in wanted):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 -- any import-time failure is reported, not fatal
            manager.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        manager.versions[ep.name] = _version(ep.dist.name) if ep.dist else "unknown"
    for module in filter(None, os.environ.get(PLUGIN_MODULES_ENV, "").split(",")):
        try:
            plugin = importlib.import_module(module.strip())
        except Exception as exc:  # noqa: BLE001 -- reported like an entry-point plugin that fails
            manager.failed[module.strip()] = f"{type(exc).__name__}: {exc}"
            continue
        extra = [*extra, (module.strip(), plugin)]
    for name, plugin in extra:
        pm.register(plugin, name=name)
        manager.versions[name] = getattr(plugin, "__version__", "unknown")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from None
    manager.require(wanted)
    return manager


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Registries:
    """The frozen registries of one run, built from one plugin manager."""

    tasks: Registry[Any]
    metrics: Registry[Any]
    groupers: Registry[Any]
    predictors: Registry[Any]


def build_registries(manager: PluginManager) -> Registries:
    """Call every ``register_*`` hook, recording which plugin registered what, then freeze."""
    from harness.api import Grouper, Metric, Predictor, TaskSpec

    tasks: Registry[TaskSpec] = Registry("task")
    metrics: Registry[Metric] = Registry("metric")
    groupers: Registry[Grouper] = Registry("grouper")
    predictors: Registry[Predictor] = Registry("predictor")
    kinds: list[tuple[str, Registry[Any], type[Any]]] = [
        ("register_tasks", tasks, TaskSpec),
        ("register_metrics", metrics, Metric),
        ("register_groupers", groupers, Grouper),
        ("register_predictors", predictors, Predictor),
    ]
    for hook_name, registry, cls in kinds:
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            impl.function(register=_registrar(registry, cls, impl.plugin_name))
        registry.freeze()
    for entry in tasks:
        for metric in entry.value.metrics:
            if metric not in metrics:
                raise RegistryError(
                    f"task {entry.name!r} (plugin {entry.plugin!r}) uses "
                    + unknown_name_message("metric", metric, metrics.names())
                )
    return Registries(tasks, metrics, groupers, predictors)


def _registrar(registry: Registry[Any], cls: type[Any], plugin: str) -> Callable[[Any], None]:
    def register(obj: Any) -> None:
        if not isinstance(obj, cls):
            raise PluginError(
                f"plugin {plugin!r} registered {type(obj).__name__} with {registry.kind}s; "
                f"pass a harness.{cls.__name__}"
            )
        registry.add(obj.name, obj, plugin)

    return register
