"""Plugin manager and registries: provenance, loud collisions, did-you-mean, failures by name."""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest

from harness import TaskSpec, hookimpl
from harness.cli import main
from harness.errors import PluginError, RegistryError
from harness.plugins import build_registries, new_manager
from harness.registry import Registry
from tests.conftest import ROOT


def test_registries_record_the_registering_plugin(toy_manager):
    registries = build_registries(toy_manager)
    assert registries.tasks.entry("toy.colour").plugin == "toy"
    assert registries.metrics.entry("accuracy").plugin == "harness.default"
    assert registries.tasks.by_plugin("toy") == ["toy.colour", "toy.score", "toy.size"]


def test_duplicate_name_names_both_plugins():
    import duplicate
    import toy

    manager = new_manager(autoload=False, extra=[("toy", toy), ("dup", duplicate)])
    with pytest.raises(RegistryError, match=r"'toy.colour' is registered twice: by plugin 'toy' and by plugin 'dup'"):
        build_registries(manager)


def test_unknown_name_lists_known_and_suggests(toy_manager):
    registries = build_registries(toy_manager)
    with pytest.raises(RegistryError) as err:
        registries.tasks.get("toy.color")
    assert "known: toy.colour, toy.score, toy.size" in str(err.value)
    assert "Did you mean 'toy.colour'?" in str(err.value)


def test_registry_is_frozen_after_loading(toy_manager):
    registries = build_registries(toy_manager)
    with pytest.raises(RegistryError, match="frozen"):
        registries.metrics.add("new", object(), "me")


def test_register_rejects_wrong_object_type():
    class Bad:
        @hookimpl
        def register_metrics(self, register):
            register("accuracy")

    with pytest.raises(PluginError, match="plugin 'bad' registered str with metrics; pass a harness.Metric"):
        build_registries(new_manager(autoload=False, extra=[("bad", Bad())]))


def test_task_using_unknown_metric_is_an_error():
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(TaskSpec("t", "regression", ("x",), loader=lambda s, c: None, metrics=("pearsonn",)))

    with pytest.raises(RegistryError, match="task 't' \\(plugin 'p'\\) uses unknown metric 'pearsonn'.*'pearson'"):
        build_registries(new_manager(autoload=False, extra=[("p", Plugin())]))


def test_misspelled_hook_fails_at_start_up():
    import misspelled

    with pytest.raises(PluginError, match="unknown hook.*register_task"):
        new_manager(autoload=False, extra=[("misspelled", misspelled)])


def _entry_points(*pairs: tuple[str, str]):
    return lambda: [importlib.metadata.EntryPoint(name, value, "harness") for name, value in pairs]


def test_failing_plugin_is_reported_and_others_load():
    manager = new_manager(entry_points=_entry_points(("broken", "broken"), ("toy", "toy")))
    assert "broken" in manager.failed and "ImportError" in manager.failed["broken"]
    assert "toy" in manager.names()
    with pytest.raises(PluginError, match="plugin 'broken' failed to load: ImportError"):
        manager.require(["broken"])


def test_autoload_off_loads_only_named(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = new_manager(load=["toy"], entry_points=_entry_points(("broken", "broken"), ("toy", "toy")))
    assert manager.names() == ["harness.default", "toy"]
    assert manager.failed == {}


def test_unknown_plugin_name_suggests():
    with pytest.raises(PluginError, match="unknown plugin 'toys'.*Did you mean 'toy'"):
        new_manager(load=["toys"], entry_points=_entry_points(("toy", "toy")))


def test_harness_plugins_survives_a_broken_plugin(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "broken,toy")
    assert main(["plugins", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["status"] == "failed"
    assert rows["toy"]["hooks"] == ["register_tasks", "run_finished", "run_started"]
    assert "register_metrics" in rows["harness.default"]["hooks"]


def test_cli_error_is_one_line_and_non_zero(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    code = main(["run", "--tasks", "toy.colour,toy.sise", "--profile", "smoke"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: unknown task 'toy.sise'") and "Did you mean 'toy.size'?" in err
    assert len(err.splitlines()) == 1


def test_registry_sorted_iteration():
    registry: Registry[int] = Registry("thing")
    registry.add("b", 2, "p")
    registry.add("a", 1, "q")
    assert [e.name for e in registry] == ["a", "b"] and len(registry) == 2 and "a" in registry


def test_every_hook_is_documented_in_the_readme():
    from harness import hookspecs

    readme = (ROOT / "README.md").read_text()
    hooks = [name for name in dir(hookspecs) if getattr(getattr(hookspecs, name), "harness_spec", None)]
    assert len(hooks) == 7
    missing = [h for h in hooks if not re.search(rf"`{h}\(", readme)]
    assert not missing, f"hooks not documented in README.md: {missing}"


def test_builtin_groupers_partition_the_tasks(toy_manager):
    registries = build_registries(toy_manager)
    tasks = [registries.tasks.get(n) for n in ("toy.colour", "toy.score", "toy.size")]
    group = {name: registries.groupers.get(name).fn for name in ("all", "singletons", "input_group")}
    assert group["all"](tasks, {}) == [["toy.colour", "toy.score", "toy.size"]]
    assert group["singletons"](tasks, {}) == [["toy.colour"], ["toy.score"], ["toy.size"]]
    assert group["input_group"](tasks, {}) == [["toy.colour", "toy.size"], ["toy.score"]]
