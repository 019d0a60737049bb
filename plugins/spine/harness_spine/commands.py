"""``harness spine ...``: command-line tools of the spine plugin."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, DataError, RunError
from harness_spine import mechanisms
from harness_spine.generator import CORPUS_VERSIONS, MECHANISM_FIELDS, GeneratorConfig, generate, ground_truth
from harness_spine.userdata import REPORTS_FILE, write_reports

GROUND_TRUTH_FILE = "ground_truth.json"


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``spine`` with its own sub-commands to the ``harness`` CLI."""
    spine = subparsers.add_parser(
        "spine", help="spine report tools (synthetic corpus)", description="Tools of the spine plugin."
    )
    spine.set_defaults(func=lambda args: _usage(spine))
    sub = spine.add_subparsers(dest="spine_command", metavar="COMMAND")
    defaults = GeneratorConfig()
    gen = sub.add_parser(
        "generate",
        help="write a synthetic corpus as reports.jsonl plus its ground_truth.json",
        description=(
            "Write a seeded synthetic corpus of spine MRI reports in the user-data format (reports.jsonl) "
            "and the planted task structure with measured label dependence (ground_truth.json)."
        ),
    )
    gen.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created if needed)")
    gen.add_argument("--reports", type=int, default=defaults.reports, metavar="N", help="reports per region")
    gen.add_argument("--seed", type=int, default=defaults.seed, metavar="S")
    gen.add_argument("--region", choices=("cervical", "lumbar", "both"), default=defaults.region)
    gen.add_argument("--noise", type=float, default=defaults.noise, metavar="P", help="label-noise rate in [0, 1]")
    gen.add_argument(
        "--relatedness", type=float, default=defaults.relatedness, metavar="R", help="planted coupling in [0, 1]"
    )
    gen.add_argument(
        "--corpus",
        type=int,
        choices=CORPUS_VERSIONS,
        default=defaults.corpus,
        help="1: every label written plainly, all splits dense; 2: with the mechanisms below; "
        "3: corpus 1's labels in the wider wording of real reports (default: %(default)s)",
    )
    gen.add_argument(
        "--scarce",
        type=mechanisms.parse_scarce,
        default=None,
        metavar="NAMES",
        help="corpus 2: pathologies annotated on few train reports, comma-separated, or 'none' "
        f"(default: {','.join(defaults.scarce)})",
    )
    gen.add_argument(
        "--scarce-fraction",
        type=float,
        default=None,
        metavar="F",
        help=f"corpus 2: share of train reports annotated for the scarce ones (default: {defaults.scarce_fraction})",
    )
    gen.add_argument(
        "--implied",
        type=float,
        default=None,
        metavar="P",
        help="corpus 2: probability that a canal narrowed by a disc is stated only through the disc's effect "
        f"(default: {defaults.implied})",
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing files in DIR")
    gen.set_defaults(func=generate_command)
    _add_evaluate(sub)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = sub.add_parser(
        "evaluate",
        help="score a run's trained model on annotated reports, beside always answering normal",
        description=(
            "Run a run's saved model over annotated spine reports (the user-data format) as harness predict does "
            "(whole reports, segmented into one snippet per level) and score every labelled level and pathology: "
            "accuracy, accuracy on abnormal labels, macro-F1 per pathology and per task, beside the always-normal "
            "baseline. Prints figures only, never labels or report text."
        ),
    )
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory (harness run --output)")
    ev.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="FILE",
        help="annotated reports in the user-data format (a .jsonl file, or a folder holding reports.jsonl)",
    )
    ev.add_argument(
        "--job",
        default="all",
        metavar="KEY",
        help="the model: all (default: the all-task MTL model), stl (each task scored by its own STL model), "
        "or a job key from RUN_DIR/jobs (a unique beginning is enough)",
    )
    ev.add_argument("--seed", type=int, help="the seed of --job all/stl (default: the run's first seed)")
    ev.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the figures as JSON to FILE ('-': stdout); never half-written; an existing file only "
        "with --force",
    )
    ev.add_argument("--force", action="store_true", help="replace an existing --json file")
    ev.set_defaults(func=evaluate_command)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def generate_command(args: argparse.Namespace) -> int:
    """Write ``reports.jsonl`` and ``ground_truth.json`` into ``args.out``; summary on stderr."""
    given = {f: getattr(args, f) for f in MECHANISM_FIELDS if getattr(args, f) is not None}
    if args.corpus != 2 and given:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        verb = "applies" if len(given) == 1 else "apply"
        raise ConfigError(f"{flags} only {verb} to --corpus 2; drop them or use --corpus 2")
    config = GeneratorConfig(
        reports=args.reports, region=args.region, noise=args.noise, relatedness=args.relatedness, seed=args.seed,
        corpus=args.corpus, **given,
    )  # fmt: skip
    out: Path = args.out
    targets = [out / REPORTS_FILE, out / GROUND_TRUTH_FILE]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.force:
        raise RunError(f"{' and '.join(existing)}: already there; pass --force to overwrite or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"--out {out}: cannot create the folder ({exc.strerror or exc}); choose another --out") from None
    corpus = generate(config)
    count = write_reports(targets[0], (s.report for s in corpus.reports))
    truth = ground_truth(corpus)
    tmp = targets[1].with_name(f".{GROUND_TRUTH_FILE}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, targets[1])
    per_region = ", ".join(f"{r} {n}" for r, n in truth["reports"].items())
    print(f"wrote {count} reports ({per_region}) to {targets[0]}", file=sys.stderr)
    print(f"wrote the planted task groups and label dependence to {targets[1]}", file=sys.stderr)
    for region, groups in truth["groups"].items():
        listed = "; ".join(
            f"{g}: {', '.join(t.split('.', 1)[1] for t in tasks)}" for g, tasks in groups.items() if tasks
        )
        print(f"  {region}: {listed}", file=sys.stderr)
    return 0


STDOUT = Path("-")


def evaluate_command(args: argparse.Namespace) -> int:
    """Score the chosen model(s) of ``args.run_dir`` on ``args.data`` (``transfer.py``): a table on
    stderr, the JSON figures to ``--json``. Everything is checked before a model is loaded."""
    from harness.core.plugins import build_registries
    from harness.inference import jobs as run_jobs
    from harness_spine import transfer
    from harness_spine.userdata import read_reports, resolve

    if args.seed is not None and args.job not in ("all", "stl"):
        raise ConfigError(
            f"--seed {args.seed} chooses the seed of --job all and --job stl only; a job key names its own seed: "
            "drop --seed, or pass --job all or --job stl"
        )
    run = run_jobs.read_run(args.run_dir)
    chosen = run_jobs.select_jobs(run, [args.job], args.seed)
    if args.job == "stl":
        for line in run_jobs.missing_stl(run, args.seed):
            _say(f"warning: {line}")
    folders = {job.key: run_jobs.model_folder(run, job) for job, _ in chosen}
    if not args.data.exists():
        raise DataError(f"--data {args.data}: no such file or folder; pass annotated reports (the user-data format)")
    data = resolve(args.data)
    reports = read_reports(data)
    gold = transfer.gold_labels(reports)
    if not gold:
        raise DataError(
            f"--data {data}: none of its {len(reports)} reports labels a level; annotate the reports' levels "
            "(labels: level -> pathology -> label), see the spine plugin README"
        )
    owner = transfer.model_tasks(folders, gold)
    if not any(g.task in owner for g in gold):
        labelled = sorted({g.task for g in gold})
        raise DataError(
            f"--data {data}: the model predicts none of the labelled tasks ({', '.join(labelled)}); it predicts "
            f"{', '.join(owner)}"
        )
    _check_json(args.json, args.force)
    if args.json is not None and args.json != STDOUT and args.json.resolve() == data.resolve():
        raise ConfigError(f"--json {args.json} is the --data file; write the figures to another file")
    readers = build_registries(args.manager, require_wanted=True).readers
    for job, is_all in chosen:
        if job.key in owner.values():
            _say(f"scoring {job.describe(is_all)}")
    scores = transfer.score(gold, transfer.predict_gold(folders, reports, gold, readers, where=str(data)))
    _print_scores(scores, data)
    if args.json is not None:
        _write_json(args.json, {"run": str(args.run_dir), "jobs": list(dict.fromkeys(owner.values())),
                                "data": str(data), **scores.to_dict()})  # fmt: skip
    return 0


def _check_json(path: Path | None, force: bool) -> None:
    """``ConfigError`` for a ``--json`` target that is a folder, exists (without ``force``), or whose
    folder does not exist or cannot be written; checked before any model is loaded."""
    if path is None or path == STDOUT:
        return
    if path.is_dir():
        raise ConfigError(f"--json {path} is a folder; name a file")
    if os.path.lexists(path) and not force:
        raise ConfigError(f"--json {path} exists; choose another file, or pass --force to replace it")
    if not path.parent.is_dir():
        raise ConfigError(f"--json {path}: the folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--json {path}: cannot write into {path.parent}; choose another file")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """To stdout for ``-``, else atomically (a temporary file renamed over ``path``)."""
    from harness.protocol.rundir import write_json

    if path == STDOUT:
        json.dump(data, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    write_json(path, data)
    _say(f"wrote the figures to {path}")


def _print_scores(scores: Any, data: Path) -> None:
    """The figures beside the always-normal baseline, one row per scope, then what was not scored."""
    from rich.markup import escape
    from rich.table import Table

    from harness.report.console import print_table
    from harness.report.format import number

    title = (
        f"{escape(str(data))}: {scores.overall.model.labels} labels ({scores.overall.model.abnormal} abnormal) at "
        f"{scores.levels} levels of {scores.reports} reports; model vs always normal"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("scope")
    for name in (
        "labels",
        "accuracy",
        "abnormal",
        "macro-F1",
        "normal: accuracy",
        "normal: abnormal",
        "normal: macro-F1",
    ):
        table.add_column(name, justify="right")

    def abnormal(s: Any) -> str:
        return f"{number(s.abnormal_accuracy)} ({s.abnormal_correct}/{s.abnormal})"

    for row in (scores.overall, *scores.pathologies, *scores.tasks):
        m, b = row.model, row.baseline
        scope = "all labels" if row.scope == "all" else row.scope
        table.add_row(scope, str(m.labels), number(m.accuracy), abnormal(m), number(m.f1_macro), number(b.accuracy),
                      abnormal(b), number(b.f1_macro))  # fmt: skip
    print_table(table)
    _say("macro-F1: per pathology and task, over the labels in gold or predicted; all labels: the pathologies' mean")
    if scores.levels_without_text:
        _say(
            f"{scores.levels_without_text} labelled level(s) named nowhere in the findings or impression "
            f"({scores.labels_without_text} labels): predicted from an empty snippet"
        )
    if scores.unscored:
        tasks = ", ".join(scores.unscored_tasks)
        _say(f"not scored: {scores.unscored} labels of tasks the model has no head for ({tasks})")


def _say(text: str) -> None:
    from harness.report.console import console

    console.print(text, markup=False, highlight=False, soft_wrap=True)
