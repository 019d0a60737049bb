"""``harness spine ...``: command-line tools of the spine plugin."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harness.errors import ConfigError, RunError
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


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def generate_command(args: argparse.Namespace) -> int:
    """Write ``reports.jsonl`` and ``ground_truth.json`` into ``args.out``; summary on stderr."""
    given = {f: getattr(args, f) for f in MECHANISM_FIELDS if getattr(args, f) is not None}
    if args.corpus != 2 and given:
        flags = ", ".join("--" + f.replace("_", "-") for f in given)
        raise ConfigError(f"{flags} only apply to --corpus 2; drop them or use --corpus 2")
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
