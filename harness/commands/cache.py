"""``harness cache ls|gc``: the job store's entries, and pruning the least recently used."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConfigError


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("cache", help="the job store: finished jobs shared across runs (ls, gc)")
    sub = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)

    s = sub.add_parser("ls", help="the store's entries (least recently used first) and their total size")
    _store_option(s)
    s.add_argument("--json", action="store_true", help="entries and total size as JSON on stdout")
    s.set_defaults(func=cmd_ls)

    s = sub.add_parser(
        "gc",
        help="remove entries unused for DAYS, then the least recently used beyond SIZE; never an entry in use",
    )
    _store_option(s)
    s.add_argument("--older-than", type=float, metavar="DAYS", help="remove entries not used for more than DAYS")
    s.add_argument("--max-size", metavar="SIZE", help="then remove the least recently used until the rest fit (2G)")
    s.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    s.add_argument("--json", action="store_true", help="what was (or would be) removed, as JSON on stdout")
    s.set_defaults(func=cmd_gc)


def _store_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--job-store",
        metavar="DIR",
        help="the store folder (default: $HARNESS_JOB_STORE or $HARNESS_CACHE/jobs, as for harness run)",
    )


def _root(args: argparse.Namespace) -> Path:
    from harness.protocol.jobstore import store_root

    root = store_root(args.job_store or "")
    if root is None:
        raise ConfigError("no job store (--job-store none or HARNESS_JOB_STORE=none); name one with --job-store DIR")
    if root.exists() and not root.is_dir():
        raise ConfigError(f"job store {root}: not a folder; name the store's folder with --job-store DIR")
    if args.job_store and not root.exists():  # named, and absent: a typo, not an empty store
        raise ConfigError(
            f"job store {root}: no such folder; check the path (a run creates its store when it stores its first job)"
        )
    return root


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from harness.commands.inspect import emit_json
    from harness.protocol.jobstore import list_entries
    from harness.report.console import console, print_table

    root = _root(args)
    entries = list_entries(root)
    total = sum(e.size for e in entries)
    if args.json:
        emit_json({"store": str(root), "entries": [e.to_json() for e in entries], "total_size": total})
        return 0
    table = Table(title=f"job store {root}", title_justify="left")
    for column in ("key", "kind", "tasks", "seed", "size", "created", "last used", "harness"):
        table.add_column(column, justify="right" if column in ("seed", "size") else "left")
    for e in entries:
        j = e.to_json()
        cells = (e.key, e.kind, ",".join(e.tasks), str(e.seed), _size(e.size), j["created"], j["last_used"], e.harness)
        table.add_row(*(Text(c) for c in cells))
    print_table(table)
    console.print(f"{len(entries)} entries, {_size(total)} in all", markup=False, highlight=False)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from harness.commands.inspect import emit_json
    from harness.protocol.jobstore import collect, gc_plan, list_entries, parse_size
    from harness.report.console import console

    if args.older_than is not None and args.older_than < 0:
        raise ConfigError(f"--older-than {args.older_than}: days must be >= 0")
    max_size = None if args.max_size is None else parse_size(args.max_size)
    root = _root(args)
    entries = list_entries(root)
    removed, locked = collect(root, gc_plan(entries, args.older_than, max_size), args.dry_run)
    freed = sum(e.size for e in removed)
    if args.json:
        emit_json(
            {
                "store": str(root),
                "dry_run": args.dry_run,
                "removed": [e.key for e in removed],
                "in_use": [e.key for e in locked],
                "freed": freed,
                "remaining": sum(e.size for e in entries) - freed,
            }
        )
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for e in removed:
        console.print(f"{verb} {e.key} ({_size(e.size)})", markup=False, highlight=False)
    for e in locked:
        console.print(f"kept {e.key}: in use by another process", markup=False, highlight=False)
    if args.older_than is None and max_size is None:
        console.print("no --older-than or --max-size: only temporary folders of dead writers are removed")
    console.print(
        f"{verb} {len(removed)} of {len(entries)} entries, {_size(freed)}; "
        f"{_size(sum(e.size for e in entries) - freed)} remain in {root}",
        markup=False,
        highlight=False,
    )
    return 0
