"""Plugin manager and registries: provenance, loud collisions, did-you-mean, failures by name."""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest

from harness import DataError, LoadContext, Metric, TaskSpec, hookimpl
from harness.cli import main
from harness.core.plugins import build_registries, new_manager
from harness.core.registry import Registry
from harness.errors import PluginError, RegistryError
from tests.conftest import ROOT


def test_registries_record_the_registering_plugin(toy_manager):
    registries = build_registries(toy_manager)
    assert registries.tasks.entry("toy.colour").plugin == "toy"
    assert registries.metrics.entry("accuracy").plugin == "harness.default"
    assert registries.tasks.by_plugin("toy") == ["toy.colour", "toy.score", "toy.size"]


def test_duplicate_name_fails_both_plugins_naming_the_other():
    import duplicate
    import toy

    manager = new_manager(autoload=False, extra=[("toy", toy), ("dup", duplicate)])
    registries = build_registries(manager)
    assert manager.failed == {
        "dup": "task 'toy.colour' is registered by plugin 'toy' too; rename one of them or uninstall one plugin",
        "toy": "task 'toy.colour' is registered by plugin 'dup' too; rename one of them or uninstall one plugin",
    }
    with pytest.raises(RegistryError, match=r"task 'toy.colour' is unavailable: plugin 'dup' failed to load: task"):
        registries.tasks.get("toy.colour")
    assert "accuracy" in registries.metrics  # the core is untouched


def test_a_name_the_core_registers_fails_only_the_plugin():
    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(Metric("accuracy", lambda p, r: 1.0))

    manager = new_manager(autoload=False, extra=[("mine", Plugin())])
    registries = build_registries(manager)
    assert manager.failed == {"mine": "metric 'accuracy' is built in; rename one of them or uninstall one plugin"}
    assert registries.metrics.entry("accuracy").plugin == "harness.default"


def test_one_plugin_registering_a_name_twice_is_told_to_rename():
    import twins

    manager = new_manager(autoload=False, extra=[("twins", twins)])
    build_registries(manager, require_wanted=False)
    assert manager.failed == {"twins": "registers task 'twins.task' twice; rename one of them"}


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

    manager = new_manager(autoload=False, extra=[("bad", Bad())])
    build_registries(manager, require_wanted=False)
    with pytest.raises(
        PluginError, match="plugin 'bad' failed to load: registered str with metrics; pass a harness.Me"
    ):
        manager.require(["bad"])


def test_task_using_unknown_metric_fails_its_plugin():
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(TaskSpec("t", "regression", ("x",), loader=lambda s, c: None, metrics=("pearsonn",)))

    manager = new_manager(load=["p"], autoload=False, extra=[("p", Plugin())])  # a command needs plugin p
    with pytest.raises(
        PluginError, match="plugin 'p' failed to load: task 't' uses unknown metric 'pearsonn'.*'pearson'"
    ):
        build_registries(manager)


def _single_task_plugin(problem_type: str, metric: str, labels: tuple[str, ...] = ("a", "b")) -> object:
    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            labels_ = () if problem_type == "regression" else labels
            register(TaskSpec("t", problem_type, ("x",), loader=lambda s, c: None, metrics=(metric,), labels=labels_))

    return Plugin()


@pytest.mark.parametrize("metric", ["matthews_correlation", "quadratic_kappa", "pearson"])
def test_task_naming_a_metric_that_cannot_score_its_problem_type_is_refused_at_load(metric):
    import toy

    plugin = _single_task_plugin("multi_label_classification", metric)
    manager = new_manager(autoload=False, extra=[("ml", plugin), ("toy", toy)])
    registries = build_registries(manager, require_wanted=False)
    assert manager.failed["ml"].startswith(
        f"task 't' (multi_label_classification) uses metric {metric!r}, which scores only"
    )
    assert manager.failed["ml"].endswith("metrics for multi_label_classification: accuracy, f1_macro, f1_micro")
    assert "toy.colour" in registries.tasks  # other plugins are unaffected


def test_a_metric_declares_its_problem_types_and_defaults_to_all():
    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(Metric("any", lambda p, r: 0.0))
            register(Metric("real_only", lambda p, r: 0.0, problem_types=("regression",)))

    ok = new_manager(
        autoload=False, extra=[("m", Plugin()), ("t", _single_task_plugin("multi_label_classification", "any"))]
    )
    assert "t" in build_registries(ok).tasks
    bad = new_manager(
        autoload=False, extra=[("m", Plugin()), ("t", _single_task_plugin("single_label_classification", "real_only"))]
    )
    build_registries(bad, require_wanted=False)
    assert "which scores only regression" in bad.failed["t"]
    with pytest.raises(PluginError, match="metric 'x': unknown problem_type 'regresion'"):
        Metric("x", lambda p, r: 0.0, problem_types=("regresion",))


def test_a_failed_plugin_takes_its_metrics_and_the_tasks_using_them():
    class Provider:
        @hookimpl
        def register_metrics(self, register):
            register(Metric("shared", lambda p, r: 0.0))

        @hookimpl
        def register_tasks(self, register):
            raise RuntimeError("boom")

    manager = new_manager(autoload=False, extra=[("a", Provider()), ("b", _single_task_plugin("regression", "shared"))])
    registries = build_registries(manager, require_wanted=False)
    assert manager.failed["a"] == "register_tasks raised RuntimeError: boom"
    assert manager.failed["b"].startswith("task 't' uses unknown metric 'shared'")
    assert "shared" not in registries.metrics and "t" not in registries.tasks


def test_misspelled_hook_fails_its_plugin_with_a_suggestion():
    import misspelled
    import toy

    manager = new_manager(autoload=False, extra=[("misspelled", misspelled), ("toy", toy)])
    assert manager.failed == {"misspelled": "implements unknown hook 'register_task'; did you mean 'register_tasks'?"}
    assert "toy.colour" in build_registries(manager).tasks
    with pytest.raises(
        PluginError, match="plugin 'misspelled' failed to load: implements unknown hook 'register_task'"
    ):
        manager.require(["misspelled"])


def test_hook_with_arguments_the_core_does_not_pass_fails_its_plugin():
    class Plugin:
        @hookimpl
        def register_tasks(self, reg):
            pass

    manager = new_manager(autoload=False, extra=[("p", Plugin())])
    assert manager.failed == {
        "p": "hook 'register_tasks' takes argument(s) reg that the core does not pass; write register_tasks(register)"
    }


def test_registration_hook_that_raises_fails_its_plugin_and_discards_what_it_registered(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "raising,toy")
    manager = new_manager(autoload=False)
    registries = build_registries(manager)
    assert manager.failed == {"raising": "register_tasks raised RuntimeError: cannot reach the [data.hub] server"}
    assert "raising" not in manager.names()  # unregistered: none of its hooks runs again
    assert "raising.metric" not in registries.metrics  # registered by a hook that succeeded, still discarded
    with pytest.raises(RegistryError, match="task 'raising.first' is unavailable: plugin 'raising' failed to load"):
        registries.tasks.get("raising.first")
    with pytest.raises(RegistryError, match=r"unknown task 'raising\.second'.*Plugin\(s\) 'raising' failed to load"):
        registries.tasks.get("raising.second")
    assert registries.tasks.by_plugin("toy") == ["toy.colour", "toy.score", "toy.size"]


def test_system_exit_at_import_fails_only_that_plugin(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "exits,toy")
    rows = {r["name"]: r for r in _json(capsys, ["plugins", "--json"])}
    assert rows["exits"]["status"] == "failed" and rows["exits"]["error"] == "SystemExit: needs a GPU"
    listing = _json(capsys, ["list", "--plugin", "toy", "--no-sizes", "--json"])
    assert [t["name"] for t in listing["tasks"]] == ["toy.colour", "toy.score", "toy.size"]


def test_naming_an_installed_plugin_module_again_is_reported_not_a_traceback(monkeypatch):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    manager = new_manager(entry_points=_entry_points(("toyish", "toy")))
    assert "toyish" in manager.names()
    assert manager.failed == {"toy": "it is the same module as plugin 'toyish', which is loaded already; name it once"}


def _json(capsys, argv: list[str]) -> object:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_commands_that_need_a_failed_plugin_fail_in_one_line_and_others_work(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "raising,toy")
    rows = {r["name"]: r for r in _json(capsys, ["plugins", "--json"])}
    assert rows["raising"]["status"] == "failed" and rows["toy"]["status"] == "loaded"
    expected = "error: plugin 'raising' failed to load: register_tasks raised RuntimeError: cannot reach the [data.hub]"
    assert _one_line_error(capsys, ["run", "--plugin", "raising", "--profile", "smoke"]).startswith(expected)
    assert _one_line_error(capsys, ["list", "--plugin", "raising"]).startswith(expected)
    # `run --plugin toy` gets past the registries to its own check of the group
    err = _one_line_error(capsys, ["run", "--plugin", "toy", "--group", "toy.colour", "--profile", "smoke"])
    assert "an MTL group needs at least two tasks" in err


def test_bare_list_lists_the_others_and_names_the_failed_plugin_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "raising,toy")
    assert main(["list", "--no-sizes"]) == 0
    err = capsys.readouterr().err
    assert "toy.colour" in err and "Traceback" not in err
    failed = [line for line in err.splitlines() if "raising" in line]
    assert failed == [
        "plugin 'raising' failed to load: register_tasks raised RuntimeError: cannot reach the [data.hub] server"
    ]


def test_a_loader_that_raises_or_returns_no_dataset_is_one_line_naming_task_split_and_plugin(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "badloader,toy")
    registries = build_registries(new_manager(autoload=False))
    with pytest.raises(DataError) as err:
        registries.tasks.get("badloader.missing").loader("dev", LoadContext())
    assert str(err.value) == (
        "task 'badloader.missing' split 'dev': the loader of plugin 'badloader' raised "
        "FileNotFoundError: [Errno 2] No such file or directory: '/nowhere/dev.jsonl'"
    )
    with pytest.raises(
        DataError, match="'badloader.none' split 'train': the loader of plugin 'badloader' returned None"
    ):
        registries.tasks.get("badloader.none").loader("train", LoadContext())
    assert main(["list"]) == 0  # a bare list still lists every plugin's tasks
    err_lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(err_lines)
    assert [line for line in err_lines if line.startswith("badloader.missing unavailable:")] == [
        "badloader.missing unavailable: task 'badloader.missing' split 'train': the loader of plugin 'badloader' "
        "raised FileNotFoundError: [Errno 2] No such file or directory: '/nowhere/train.jsonl'"
    ]


def test_a_metric_function_that_raises_is_one_line_naming_it_and_its_plugin():
    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(Metric("fragile", lambda p, r: 1 / 0))

    registries = build_registries(new_manager(autoload=False, extra=[("p", Plugin())]))
    with pytest.raises(
        PluginError, match="^metric 'fragile' of plugin 'p' raised ZeroDivisionError: division by zero$"
    ):
        registries.metrics.get("fragile").fn([1], [1])


def test_a_loader_raising_the_public_data_error_is_passed_through():
    def load(split, ctx):
        raise DataError(f"tickets {split} file is missing; pass --data DIR")

    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(TaskSpec("t", "regression", ("x",), loader=load, metrics=("mse",)))

    registries = build_registries(new_manager(autoload=False, extra=[("p", Plugin())]))
    with pytest.raises(DataError, match="^tickets train file is missing; pass --data DIR$"):
        registries.tasks.get("t").loader("train", LoadContext())


def test_a_failing_command_hook_fails_its_plugin_and_removes_what_it_added(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "badcommands")
    rows = {r["name"]: r for r in _json(capsys, ["plugins", "--json"])}
    assert (
        rows["badcommands"]["error"]
        == "register_commands raised ValueError: this fixture plugin's command hook fails on purpose"
    )
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "half-added" not in capsys.readouterr().out


def test_core_commands_come_first_in_help_then_plugins_in_name_order(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "cmdplugin")
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.findall(r"^ {4}(\S+) ", capsys.readouterr().out, flags=re.MULTILINE)
    assert listed == ["plugins", "list", "show", "run", "cache", "predict", "aaa", "spine"]  # leaderboard wraps


def test_run_help_lists_the_profiles(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--profile {smoke,science-smoke,default}" in capsys.readouterr().out


def _entry_points(*pairs: tuple[str, str]):
    return lambda: [importlib.metadata.EntryPoint(name, value, "harness") for name, value in pairs]


def test_failing_plugin_is_reported_and_others_load():  # an entry point that fails to import
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
    assert len(hooks) == 8
    missing = [h for h in hooks if not re.search(rf"`{h}\(", readme)]
    assert not missing, f"hooks not documented in README.md: {missing}"


def test_builtin_groupers_partition_the_tasks(toy_manager):
    registries = build_registries(toy_manager)
    tasks = [registries.tasks.get(n) for n in ("toy.colour", "toy.score", "toy.size")]
    group = {name: registries.groupers.get(name).fn for name in ("all", "singletons", "input_group")}
    assert group["all"](tasks, {}) == [["toy.colour", "toy.score", "toy.size"]]
    assert group["singletons"](tasks, {}) == [["toy.colour"], ["toy.score"], ["toy.size"]]
    assert group["input_group"](tasks, {}) == [["toy.colour", "toy.size"], ["toy.score"]]


def test_an_observer_that_raises_fails_its_plugin_and_the_others_still_hear(caplog):
    import toy

    class Tracker:
        @hookimpl
        def run_finished(self, run_dir, results):
            raise ConnectionError("tracker offline")

    manager = new_manager(autoload=False, extra=[("tracker", Tracker()), ("toy", toy)])
    toy.EVENTS.clear()
    manager.notify("run_finished", run_dir="runs/x", results={})
    assert toy.EVENTS == [("finished", "runs/x")]
    assert manager.failed == {"tracker": "run_finished raised ConnectionError: tracker offline"}
    assert "plugin 'tracker' failed: run_finished raised ConnectionError" in caplog.text
