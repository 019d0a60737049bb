"""``harness leaderboard``: add, show, render, baseline, check, schema."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import LeaderboardError

if TYPE_CHECKING:
    from harness.leaderboard.compare import Entry, Key
    from harness.leaderboard.records import RunRecord

DEFAULT_DIR = Path("leaderboard")
SORTS = ("rank", "gap", "date", "cost")


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("leaderboard", help="record runs, view and render the leaderboard, the CI gate")
    sub = p.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)

    s = sub.add_parser("add", help="record a finished run directory on the leaderboard (one new file)")
    s.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    _dir_option(s)
    s.add_argument("--run-id", help="the record's id (default: <UTC time>-<plugins>-<results hash>)")
    s.set_defaults(func=cmd_add)

    s = sub.add_parser("show", help="the leaderboard as tables: results per comparable task, predictor scores")
    _dir_option(s)
    s.add_argument("--task", action="append", default=[], help="only this task (repeatable)")
    s.add_argument("--model", action="append", default=[], help="only runs of this model (repeatable)")
    s.add_argument("--group", action="append", default=[], help="only this group: tasks joined by '+' (repeatable)")
    s.add_argument("--kind", choices=("stl", "mtl"), help="only STL or only MTL results")
    s.add_argument("--metric", help="this metric instead of each task's primary metric ('all' for every metric)")
    s.add_argument("--predictor", action="append", default=[], help="only this predictor's scores (repeatable)")
    s.add_argument("--run", action="append", default=[], help="only this run id (repeatable)")
    s.add_argument(
        "--sort",
        choices=SORTS,
        default="rank",
        help="rank: by the metric's registered direction (default); gap: largest MTL-STL gap first; "
        "date: newest first; cost: cheapest training first",
    )
    s.add_argument("--json", action="store_true", help="the selected rows as JSON on stdout")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("render", help="write the leaderboard as a static HTML page and a Markdown page")
    s.add_argument("out", type=Path, metavar="OUT", help="output folder (index.html, leaderboard.md, figures/)")
    _dir_option(s)
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("baseline", help="write a run's results as the gate's baseline (on purpose)")
    s.add_argument("--from", dest="source", type=Path, required=True, metavar="RUN_DIR", help="a finished run")
    s.add_argument("--out", type=Path, required=True, metavar="FILE", help="the baseline file to write")
    s.add_argument("--floor", type=float, help="smallest metric change that matters (default 0.01)")
    s.add_argument("--detect", type=float, help="metric change the gate must detect (default 0.1)")
    s.add_argument("--score-floor", type=float, help="the same for predictor scores, rho (default 0.05)")
    s.add_argument("--score-detect", type=float, help="the same for predictor scores, rho (default 0.5)")
    s.add_argument("--note", default="", help="why this baseline was written (kept in the file)")
    s.add_argument("--force", action="store_true", help="replace an existing baseline file")
    s.set_defaults(func=cmd_baseline)

    s = sub.add_parser("check", help="compare a run with the baseline; exit 1 on a regression")
    s.add_argument("run", type=Path, metavar="RUN", help="a finished run directory (or a record .json file)")
    s.add_argument("--baseline", type=Path, required=True, metavar="FILE")
    s.add_argument("--json", action="store_true", help="every check as JSON on stdout")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("schema", help="the JSON Schema of a leaderboard record (or a baseline)")
    s.add_argument("--baseline", action="store_true", help="the baseline file's schema instead")
    s.set_defaults(func=cmd_schema)


def _dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="the leaderboard folder: one record per run in DIR/runs/ (default: %(default)s)",
    )


def cmd_add(args: argparse.Namespace) -> int:
    from harness.leaderboard.collect import record_from_run
    from harness.leaderboard.store import write_record
    from harness.report.console import console

    if args.run_id is not None:
        from harness.leaderboard.collect import check_run_id

        check_run_id(args.run_id)
    check_leaderboard_dir(args.dir, "--dir")
    path = write_record(args.dir, record_from_run(args.run_dir, args.run_id))
    console.print(f"recorded {args.run_dir} as {path}", markup=False, highlight=False)
    return 0


def _run_record(path: Path) -> RunRecord:
    from harness.leaderboard.collect import record_from_run
    from harness.leaderboard.store import read_record

    if path.is_file():
        import json

        try:
            kind = json.loads(path.read_text(encoding="utf-8-sig")).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind == "harness.leaderboard.baseline":
            raise LeaderboardError(f"{path} is a baseline; check a run directory (or a leaderboard record) against it")
        return read_record(path)
    return record_from_run(path)


def select(records: list[RunRecord], args: argparse.Namespace) -> list[Entry]:
    """The (record, row) entries passing the show filters."""
    chosen: list[Entry] = []
    for r in records:
        if not _run_selected(r, args):
            continue
        for row in r.results:
            if args.task and row.task not in args.task:
                continue
            if args.group and row.group_key not in {_group(g) for g in args.group}:
                continue
            if args.kind and row.kind != args.kind:
                continue
            if args.metric != "all" and (row.metric != args.metric if args.metric else not row.primary):
                continue
            chosen.append((r, row))
    return chosen


def _sorted(entries: list[Entry], how: str) -> list[Entry]:
    if how == "gap":
        return sorted(entries, key=lambda e: -(e[1].gap.mean if e[1].gap and e[1].gap.mean is not None else -1e9))
    if how == "date":
        return sorted(entries, key=lambda e: e[0].provenance.finished, reverse=True)
    if how == "cost":
        return sorted(entries, key=lambda e: e[1].cost.train_seconds)
    return entries  # already ranked by direction


def cmd_show(args: argparse.Namespace) -> int:
    from harness.commands.inspect import emit_json
    from harness.leaderboard.compare import boards
    from harness.leaderboard.store import read_records

    records = read_records(args.dir)
    entries = select(records, args)
    grouped = boards(entries)
    runs = [r for r in records if _run_selected(r, args)]
    predictors = [(r, p) for r in runs for p in r.predictors if not args.predictor or p.name in args.predictor]
    if args.json:
        emit_json(
            {
                "tables": [
                    {
                        "key": key._asdict(),
                        "not_compared_with_previous": note,
                        "rows": [_row_json(e, rank) for rank, e in enumerate(_sorted(rows, args.sort), 1)],
                    }
                    for key, rows, note in grouped
                ],
                "predictors": [
                    {"run_id": r.run_id, **p.model_dump(mode="json", exclude={"matrix", "per_layer"})}
                    for r, p in predictors
                ],  # fmt: skip
            }
        )
        return 0
    if not records:
        raise LeaderboardError(f"{args.dir}: the leaderboard holds no run yet (runs/ is empty)")
    if not (predictors if args.predictor else entries):
        raise LeaderboardError(f"{args.dir}: no result matches these filters ({_known(records, args)})")
    if not args.predictor:
        for key, rows, note in grouped:
            _print_board(key, _sorted(rows, args.sort), note, args.sort)
    if predictors:
        _print_predictors(predictors)
    return 0


def _group(text: str) -> str:
    """A --group value as the order-free key: "b + a" and "a+b" both name the group a+b."""
    return "+".join(sorted(t.strip() for t in text.split("+") if t.strip()))


def _run_selected(r: RunRecord, args: argparse.Namespace) -> bool:
    """The run-level filters: plugin, model, run id."""
    return (
        (not args.plugin or bool(set(args.plugin) & set(r.provenance.selected_plugins)))
        and (not args.model or r.model.name in args.model)
        and (not args.run or r.run_id in args.run)
    )


def _known(records: list[RunRecord], args: argparse.Namespace) -> str:
    """What the filters could name, for the no-match error."""
    known = {
        "task": sorted({t.name for r in records for t in r.tasks}),
        "model": sorted({r.model.name for r in records}),
        "predictor": sorted({p.name for r in records for p in r.predictors}),
        "metric": sorted({row.metric for r in records for row in r.results}),
    }
    named = [f"{k}s: {', '.join(v)}" for k, v in known.items() if getattr(args, k, None)]
    return f"{len(records)} run(s); " + ("; ".join(named) if named else "try fewer filters")


def _row_json(e: Entry, rank: int) -> dict[str, Any]:
    record, row = e
    return {
        "rank": rank,
        "run_id": record.run_id,
        "finished": record.provenance.finished.isoformat(),
        "model": record.model.name,
        "profile": record.provenance.profile,
        "plugins": record.provenance.selected_plugins,
        **row.model_dump(mode="json"),
    }


def _print_board(key: Key, rows: list[Entry], note: str | None, sort: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from harness.leaderboard.compare import key_title
    from harness.report.console import console, print_table
    from harness.report.format import number, with_interval

    if note:
        console.print(f"not compared with the {escape(key.task)} table above: {escape(note)}", style="yellow")
    title = escape(key_title(key)) + ("" if sort == "rank" else f" · sorted by {sort}")
    table = Table(title=title, title_justify="left")
    for name, justify in (("#", "right"), ("run", "left"), ("model", "left"), ("group", "left"), ("kind", "left"),
                          ("value (95% CI)", "right"), ("seeds", "right"), ("gap vs STL (95% CI)", "right"),
                          ("train s", "right"), ("ex/s", "right"), ("peak MB", "right"), ("procs", "right"),
                          ("device", "left")):  # fmt: skip
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rank, (record, row) in enumerate(rows, 1):
        cost = row.cost
        ci = [row.ci95.low, row.ci95.high] if row.ci95 else None
        gap = row.gap
        gap_text = with_interval(gap.mean, [gap.ci95.low, gap.ci95.high] if gap.ci95 else None) if gap else ""
        table.add_row(
            str(rank),
            escape(record.run_id),
            escape(record.model.name),
            escape(" + ".join(row.group)),
            row.kind,
            with_interval(row.mean, ci),
            str(sum(v is not None for v in row.values)),
            gap_text,
            f"{cost.train_seconds:.0f}",
            number(cost.examples_per_second, 0) if cost.examples_per_second is not None else "n/a",
            f"{cost.peak_memory_mb:.0f}" if cost.peak_memory_mb is not None else "n/a",
            str(cost.processes),
            escape(cost.device or "n/a"),
        )
    print_table(table)


def _print_predictors(predictors: list[tuple[RunRecord, Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from harness.report.console import print_table
    from harness.report.format import number, with_interval

    table = Table(title="predictor scores: Spearman rho of the predictor against the measured gaps (higher = better)",
                  title_justify="left")  # fmt: skip
    for name in ("run", "predictor", "rho vs pair gaps (95% CI)", "p", "rho vs group gaps", "of ceiling",
                 "neg. transfer F1", "cost share", "seconds", "note"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("run", "predictor", "note") else "right")
    for r, p in sorted(predictors, key=lambda rp: (rp[0].provenance.finished, rp[1].name)):
        pairs, groups = p.pairs, p.groups
        table.add_row(
            escape(r.run_id),
            escape(p.name),
            with_interval(pairs.value, [pairs.ci95.low, pairs.ci95.high] if pairs.ci95 else None) if pairs else "n/a",
            number(pairs.p_value) if pairs and pairs.p_value is not None else "n/a",
            number(groups.value) if groups else "n/a",
            number(p.fraction_of_ceiling) if p.fraction_of_ceiling is not None else "n/a",
            number(p.negative_transfer_f1) if p.negative_transfer_f1 is not None else "n/a",
            number(p.cost_share) if p.cost_share is not None else "n/a",
            f"{p.seconds:.1f}",
            escape(p.error or "; ".join(p.notes))[:80],
        )
    print_table(table)


def cmd_render(args: argparse.Namespace) -> int:
    from harness.leaderboard.render import render
    from harness.leaderboard.store import read_records
    from harness.report.console import console

    files = render(read_records(args.dir), args.out)
    figures = sum(name.startswith("figures/") for name in files)
    console.print(
        f"wrote {files['index.html']} (self-contained, offline) and {files['leaderboard.md']} with {figures} figures",
        markup=False,
        highlight=False,
    )
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from harness.leaderboard.gate import Tolerance, make_baseline
    from harness.protocol.rundir import write_json
    from harness.report.console import console

    if args.out.is_dir():
        raise LeaderboardError(f"--out {args.out} is a folder; name the baseline file")
    if args.out.exists() and not args.force:
        raise LeaderboardError(f"--out {args.out} exists; pass --force to replace the baseline on purpose")
    if not args.out.parent.is_dir():
        raise LeaderboardError(f"--out {args.out}: no folder {args.out.parent}; create it first")
    limits = {k: getattr(args, k) for k in ("floor", "detect", "score_floor", "score_detect")}
    try:
        tolerance = Tolerance(**{k: v for k, v in limits.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + str(first["loc"][0]).replace("_", "-")
        raise LeaderboardError(f"{flag} {limits[str(first['loc'][0])]}: {first['msg'].lower()}") from None
    baseline = make_baseline(_run_record(args.source), tolerance, args.note)
    try:
        write_json(args.out, baseline.model_dump(mode="json"))
    except OSError as exc:
        raise LeaderboardError(f"--out {args.out}: cannot write the baseline: {exc.strerror or exc}") from None
    console.print(
        f"baseline {args.out}: {len(baseline.record.results)} values and "
        f"{sum(p.pairs is not None or p.groups is not None for p in baseline.record.predictors)} predictor scores of "
        f"{args.source}",
        markup=False,
        highlight=False,
    )
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from harness.commands.inspect import emit_json
    from harness.leaderboard.gate import check, read_baseline
    from harness.report.console import console, print_table
    from harness.report.format import number

    baseline = read_baseline(args.baseline)
    checks = check(baseline, _run_record(args.run))
    failed = [c for c in checks if c.failed]
    if args.json:
        emit_json({"passed": not failed, "checks": [c.__dict__ for c in checks]})
    else:
        styles = {"regressed": "red", "incomparable": "red", "missing": "red", "improved": "green",
                  "inconclusive": "yellow"}  # fmt: skip
        table = Table(title=f"leaderboard check against {escape(str(args.baseline))}", title_justify="left")
        for name in ("verdict", "what", "name", "group", "metric", "baseline", "run", "change (+ better)", "tolerance",
                     "reason"):  # fmt: skip
            table.add_column(name, justify="right" if name in ("baseline", "run", "change (+ better)", "tolerance")
                             else "left")  # fmt: skip
        order = {"regressed": 0, "incomparable": 1, "missing": 2, "improved": 3, "inconclusive": 4, "not run": 5,
                 "pass": 6}  # fmt: skip
        for c in sorted(checks, key=lambda c: order[c.verdict]):
            style = styles.get(c.verdict)
            table.add_row(
                f"[{style}]{c.verdict}[/]" if style else c.verdict,
                c.what,
                escape(c.name),
                escape(c.group),
                escape(c.metric),
                number(c.baseline),
                number(c.run),
                number(c.change, signed=True) if c.change is not None else "",
                number(c.tolerance) if c.tolerance is not None else "",
                escape(c.reason),
            )
        print_table(table)
        counts = {v: sum(c.verdict == v for c in checks) for v in order}
        summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        vouched = counts["pass"] + counts["improved"]
        verdict = "FAILED" if failed else f"passed ({vouched} of {len(checks)} entries vouched for)"
        console.print(f"{verdict}: {summary}", markup=False, highlight=False)
        if counts["inconclusive"]:
            tolerances = sorted(c.tolerance for c in checks if c.verdict == "inconclusive" and c.tolerance is not None)
            median = tolerances[len(tolerances) // 2] if tolerances else float("nan")
            console.print(
                f"inconclusive: the seed noise of {counts['inconclusive']} entries is larger than the change the "
                f"gate should detect; only changes beyond their tolerance (median {median:.3g}) could fail it. "
                "More seeds narrow the tolerances.",
                markup=False,
                highlight=False,
            )
    return 1 if failed else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.commands.inspect import emit_json
    from harness.leaderboard.gate import Baseline
    from harness.leaderboard.records import RunRecord

    emit_json((Baseline if args.baseline else RunRecord).model_json_schema())
    return 0


def record_run(run_dir: Path, directory: Path) -> tuple[Path, bool]:
    """``harness run --leaderboard DIR``: record the finished run in ``run_dir``, once; (its record, True
    when written now). A run whose job results are all on the leaderboard already (resumed, or every
    job reused from the job store) keeps that record: False."""
    from harness.leaderboard.collect import record_from_run
    from harness.leaderboard.store import record_once

    return record_once(directory, record_from_run(run_dir))


def check_leaderboard_dir(directory: Path, flag: str = "--leaderboard") -> None:
    """Before any training: the leaderboard folder must be a folder we can write records into.

    Creates ``directory/runs`` and writes and removes a probe file there, so a file, a read-only
    folder or an unwritable place fails now, in one line, not after hours of training.
    """
    import tempfile

    runs = directory / "runs"
    for path in (directory, runs):
        if path.exists() and not path.is_dir():
            raise LeaderboardError(f"{flag} {directory}: {path} is a file; name a leaderboard folder")
    if directory.exists() and not (runs.is_dir() or not any(directory.iterdir()) or _is_repo_folder(directory)):
        raise LeaderboardError(
            f"{flag} {directory}: a non-empty folder without runs/; name a leaderboard folder (or a new one)"
        )
    try:
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs, prefix=".probe-"):
            pass
    except OSError as exc:
        raise LeaderboardError(f"{flag} {directory}: cannot write records there: {exc.strerror or exc}") from None


def _is_repo_folder(directory: Path) -> bool:
    return any((directory / name).exists() for name in ("baselines", "README.md"))
