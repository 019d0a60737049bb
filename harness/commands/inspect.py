"""``harness plugins``, ``harness list`` and ``harness show``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, HarnessError, RunError

if TYPE_CHECKING:
    from harness.protocol.results import RunResults


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("plugins", help="installed plugins, their versions and hooks")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=cmd_plugins)

    p = subparsers.add_parser(
        "list", help="tasks (problem types, split sizes), metrics, groupers, predictors, input readers"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--data", type=Path, help="data root or file passed to the task loaders")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", help="loader option")
    p.add_argument("--no-sizes", action="store_true", help="do not load data to count split sizes")
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser("show", help="print the results of a run directory")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--json", action="store_true", help="the results (RunResults JSON) on stdout, unchanged")
    p.add_argument(
        "--only",
        action="append",
        choices=("gaps", "predictors", "scores", "groupers"),
        help="print only this section (repeatable): gaps (per task, per group, by group size), "
        "predictors (pair-gap and predictor heatmaps), scores, groupers",
    )
    p.add_argument("--layers", action="store_true", help="also print the per-layer matrices (CKA, gradient cosine)")
    p.set_defaults(func=cmd_show)


def emit_json(data: Any) -> None:
    """Machine-readable output on stdout (a closed pipe is handled by ``harness.cli.main``)."""
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


def cmd_plugins(args: argparse.Namespace) -> int:
    """Every plugin with its status; registration hooks are called, so a plugin failing in one shows as failed."""
    from harness.core.plugins import build_registries

    manager = args.manager
    build_registries(manager, require_wanted=False)
    rows = [
        {"name": n, "version": manager.versions.get(n, "unknown"), "status": "loaded", "hooks": manager.hooks_of(n)}
        for n in manager.names()
    ]
    rows += [
        {"name": n, "version": manager.versions.get(n), "status": "failed", "error": e, "hooks": []}
        for n, e in sorted(manager.failed.items())
    ]
    rows += [
        {"name": n, "version": None, "status": "not loaded (auto-loading disabled)", "hooks": []}
        for n in manager.available
        if n not in manager.names() and n not in manager.failed
    ]
    if args.json:
        emit_json(rows)
        return 0
    from rich.table import Table
    from rich.text import Text

    from harness.report.console import print_table

    table = Table(title="harness plugins", title_justify="left")
    for column in ("plugin", "version", "status", "hooks"):
        table.add_column(column)
    for row in rows:
        status = row["status"] + (f": {row['error']}" if "error" in row else "")
        table.add_row(Text(row["name"]), Text(row["version"] or "-"), Text(status), Text(", ".join(row["hooks"])))
    print_table(table)
    return 0


def _split_sizes(task: Any, ctx: Any) -> dict[str, Any]:
    """Rows per split, or ``{"error": one line}`` (loaders are guarded: any failure is a HarnessError)."""
    from harness.data.streams import load_split

    sizes: dict[str, Any] = {}
    for split in task.splits:
        try:
            sizes[split] = len(load_split(task, split, ctx))
        except HarnessError as exc:
            sizes[split] = {"error": str(exc)}
    return sizes


def cmd_list(args: argparse.Namespace) -> int:
    from harness.commands.common import load_context, task_owners
    from harness.core.plugins import build_registries

    registries = build_registries(args.manager)
    plugins = task_owners(args)
    ctx = load_context(args.data, args.data_option, seed=0, profile="default")
    tasks = []
    for entry in registries.tasks:
        if plugins and entry.plugin not in plugins:
            continue
        spec = entry.value
        tasks.append(
            {
                "name": spec.name,
                "plugin": entry.plugin,
                "problem_type": spec.problem_type.value,
                "labels": list(spec.labels),
                "text_fields": list(spec.text_fields),
                "metrics": list(spec.metrics),
                "input_group": spec.input_group,
                "input_reader": spec.input_reader,
                "splits": list(spec.splits) if args.no_sizes else _split_sizes(spec, ctx),
            }
        )

    def others(registry: Any) -> list[dict[str, Any]]:
        return [{"name": e.name, "plugin": e.plugin, **_extra(e.value)} for e in registry]

    listing = {
        "tasks": tasks,
        "metrics": others(registries.metrics),
        "groupers": others(registries.groupers),
        "predictors": others(registries.predictors),
        "input_readers": others(registries.readers),
        "failed_plugins": [{"name": n, "error": e} for n, e in sorted(registries.failed.items())],
    }
    if args.json:
        emit_json(listing)
    else:
        _print_listing(listing)
    return 0


def _extra(value: Any) -> dict[str, Any]:
    out = {"description": getattr(value, "description", "")}
    if hasattr(value, "higher_is_better"):
        out["higher_is_better"] = value.higher_is_better
    if hasattr(value, "problem_types"):
        out["problem_types"] = [str(p) for p in value.problem_types]
    if hasattr(value, "needs"):  # a predictor
        out["needs"], out["symmetric"] = list(value.needs), value.symmetric
    if hasattr(value, "uses"):  # a grouper
        out["uses"] = value.uses
    if hasattr(value, "id_field"):  # an input reader
        out["id_field"], out["unit"] = value.id_field, value.unit
    return out


def _print_listing(listing: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from harness.report.console import console, print_table

    table = Table(title="tasks", title_justify="left")
    for column in ("task", "plugin", "problem type", "labels", "metrics", "input group", "splits"):
        table.add_column(column)
    for t in listing["tasks"]:
        splits = t["splits"]
        if isinstance(splits, dict):
            splits = ", ".join(f"{k}={v if isinstance(v, int) else 'unavailable'}" for k, v in splits.items())
        else:
            splits = ", ".join(splits)
        labels = ", ".join(t["labels"]) or "(regression)"
        cells = (t["name"], t["plugin"], t["problem_type"], labels, ", ".join(t["metrics"]), t["input_group"] or "-")
        table.add_row(*(Text(c) for c in (*cells, splits)))
    print_table(table)
    for kind in ("metrics", "groupers", "predictors", "input_readers"):
        names = ", ".join(e["name"] for e in listing[kind])
        console.print(f"[bold]{kind.replace('_', ' ')}:[/] " + escape(names))
    for t in listing["tasks"]:  # one line per task whose data cannot be loaded: its first error
        splits = t["splits"] if isinstance(t["splits"], dict) else {}
        errors = [e["error"] for e in splits.values() if isinstance(e, dict)]
        if errors:
            console.print(f"[yellow]{escape(t['name'])} unavailable:[/] {escape(errors[0])}", soft_wrap=True)
    for failure in listing["failed_plugins"]:  # one line per plugin that failed: its tasks are not listed
        what = escape(f"plugin {failure['name']!r} failed to load:")
        console.print(f"[yellow]{what}[/] {escape(failure['error'])}", soft_wrap=True)


def cmd_show(args: argparse.Namespace) -> int:
    """The report of a finished run: gaps, heatmaps, scores, groupers (``--only`` some), or ``--json``."""
    from rich.markup import escape

    from harness.report.tables import SECTIONS, print_report

    results = read_results(args.run_dir)
    if args.json:
        if args.only:
            raise ConfigError("--only selects sections of the printed report; --json prints the whole results")
        emit_json(results.to_json())
    else:
        sections = [s for s in SECTIONS if s in (args.only or SECTIONS)]
        print_report(results, sections, layers=args.layers, title=escape(str(args.run_dir)))
        reused_line(results.jobs)
    return 0


def reused_line(jobs: dict[str, dict[str, Any]]) -> None:
    """How many of the run's jobs were reused from the job store (trained by another run), and from where."""
    from harness.report.console import console

    sources = [j["reused_from"] for j in jobs.values() if j.get("reused_from")]
    if sources:
        folders = ", ".join(sorted({str(Path(s).parent) for s in sources}))
        line = f"{len(sources)} of {len(jobs)} jobs reused from store {folders} (trained by an earlier run)"
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def read_results(run_dir: Path) -> RunResults:
    """The typed ``RunResults`` of a finished run directory; ``RunError`` (one line, with the fix) otherwise."""
    from harness.protocol.results import RunResults
    from harness.protocol.rundir import read_json

    if not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} is not a harness run directory (no config.json); pass the --output of a run")
    results_file = run_dir / "results.json"
    if not results_file.exists():
        done = len(list(run_dir.glob("jobs/*/result.json")))
        raise RunError(
            f"{run_dir}: run not finished ({done} job(s) done); continue it with `harness run ... "
            f"--output {run_dir} --resume`"
        )
    fix = "restore the file, or rerun the run"
    data = read_json(results_file, ("plan", "tasks", "jobs"), fix)
    try:
        return RunResults.from_json(data, results_file)  # another version: a RunError saying what to do
    except TypeError as exc:  # a required key is missing
        raise RunError(f"{results_file}: incomplete results ({exc}); {fix}") from None
