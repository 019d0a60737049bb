"""``harness predict RUN_DIR --input FILE``: a run's trained models over new inputs, as JSONL or CSV.

Everything is checked before the first prediction (the run directory, the jobs and their saved
models, the input readers, the input file's format, the output); the input is then streamed
through one model at a time, and the output appears only when every row is written.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from harness.errors import DataError

log = logging.getLogger("harness")


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "predict",
        help="predict with a run's trained models (the all-task MTL model by default) over new inputs",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory (harness run --output)")
    p.add_argument(
        "--input",
        type=Path,
        required=True,
        metavar="FILE",
        help="inputs, a regular file (not stdin or a pipe: each model reads it again): JSONL (one object per "
        'line), TSV or CSV with a header; spine: whole reports ({"report_id", "region", "text"}, the user-data format)',
    )
    p.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="KEY",
        help="the model(s) to run (repeatable): all (default: the all-task MTL model), stl (every STL model), "
        "or a job key from RUN_DIR/jobs (a unique beginning is enough)",
    )
    p.add_argument(
        "--seed", type=int, help="the seed of --job all/stl (default: the run's first seed); job keys name their own"
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write here (default: stdout); never half-written; a symlink is followed, a device or FIFO written into",
    )
    p.add_argument("--format", choices=("jsonl", "csv"), help="output format (default: csv for a .csv --output)")
    p.add_argument("--input-format", choices=("jsonl", "tsv", "csv"), help="input format (default: by extension)")
    p.add_argument(
        "--echo-text",
        action="store_true",
        help="also write each unit's text (off by default: clinical text is protected health information)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --output")
    p.add_argument("--batch-size", type=int, default=64, help="units per encoder pass (default: %(default)s)")
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device: cpu (default), cuda, cuda:1, mps, ... (checked before loading: one tensor allocated on it)",
    )
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from harness.core.plugins import build_registries
    from harness.errors import ConfigError
    from harness.inference import jobs as run_jobs
    from harness.inference.engine import input_groups
    from harness.inference.output import check_output, output_format
    from harness.inference.records import check_input, input_format
    from harness.training.saved import read_info

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be at least 1")
    if args.seed is not None and args.job and not {"all", "stl"} & set(args.job):
        raise ConfigError(
            f"--seed {args.seed} chooses the seed of --job all and --job stl only; a job key names its own seed "
            "(stl-SEED-...): drop --seed, or pass --job all or --job stl"
        )
    run = run_jobs.read_run(args.run_dir)
    chosen = run_jobs.select_jobs(run, args.job, args.seed)
    if "stl" in args.job:
        from harness.report.console import console

        for line in run_jobs.missing_stl(run, args.seed):  # not refused: the finished STL models still predict
            console.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    folders = [run_jobs.model_folder(run, job) for job, _ in chosen]
    infos = [read_info(folder) for folder in folders]
    check_input(args.input)
    in_fmt = input_format(args.input, args.input_format)
    out_fmt = output_format(args.output, args.format)
    check_output(args.output, args.force)
    _check_device(args.device)
    readers = build_registries(args.manager, require_wanted=True).readers
    groups = [input_groups(info, readers) for info in infos]
    plan = [(job, is_all, folder, g) for (job, is_all), folder, g in zip(chosen, folders, groups, strict=True)]
    return _predict_all(args, plan, in_fmt, out_fmt)


def _check_device(device: str) -> None:
    """``ConfigError`` (one line: the device, and the devices this machine has) unless torch can
    hold a tensor on ``device``: a name torch does not parse; ``meta`` (tensors without data:
    nothing to predict with); ``cpu:N`` with N other than 0 (torch has one CPU device; ``cpu`` or
    ``cpu:0``); a CUDA index not below ``torch.cuda.device_count()``; any device on which a
    1-element tensor cannot be allocated (a backend this torch was not built with, no driver)."""
    import torch

    from harness.errors import ConfigError

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"--device {device}: {why}; this machine has: {', '.join(_devices())}")

    try:
        found = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise refuse("not a torch device (cpu, cuda, cuda:1, ...)") from None
    if found.type == "meta":
        raise refuse("the meta device holds no data, so nothing can be predicted on it")
    if found.type == "cpu" and found.index not in (None, 0):
        raise refuse("torch has a single CPU device (cpu, or cpu:0)")
    if found.type == "cuda" and not torch.cuda.is_available():
        raise refuse("no CUDA device here (or this torch is built without CUDA)")
    if found.type == "cuda" and found.index is not None:
        count = torch.cuda.device_count()
        if found.index >= count:
            raise refuse(f"no such CUDA device (there {'is' if count == 1 else 'are'} {count})")
    try:
        torch.empty(1, device=found)
    except Exception as exc:  # noqa: BLE001 -- any backend's failure: one line, not a traceback later
        first = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else ""
        raise refuse(f"cannot allocate a tensor on it ({type(exc).__name__}: {first})") from None


def _devices() -> list[str]:
    """The devices ``--device`` accepts here: cpu, each CUDA device, mps where available."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def _predict_all(args: argparse.Namespace, plan: list[Any], in_fmt: str, out_fmt: str) -> int:
    from harness.inference.engine import Counts, predict
    from harness.inference.output import PredictionWriter, columns
    from harness.inference.records import read_records
    from harness.report.console import console
    from harness.training.saved import load_saved

    units = list(dict.fromkeys(g.reader.unit for _, _, _, groups in plan for g in groups if g.reader.unit))
    fields = list(dict.fromkeys(f for _, _, _, groups in plan for g in groups for f in g.text_fields))
    start = time.perf_counter()
    total = 0
    with PredictionWriter(args.output, out_fmt, columns(units, fields if args.echo_text else [])) as writer:
        for job, is_all, folder, groups in plan:
            console.print(f"predicting with {job.describe(is_all)}", markup=False, highlight=False)
            loaded = load_saved(folder, args.device)
            counts = Counts()
            records = read_records(args.input, in_fmt)
            found = predict(
                loaded, groups, records, where=str(args.input), batch_size=args.batch_size, echo=args.echo_text,
                counts=counts,
            )  # fmt: skip
            for prediction in found:
                writer.write(prediction, job.key)
            _report(job.key, counts)
            total += counts.predictions
        if total == 0:
            wanted = "; ".join(
                f"{', '.join(g.tasks)}: reader {g.reader.name} (fields {', '.join(g.text_fields)})"
                for _, _, _, groups in plan
                for g in groups
            )
            raise DataError(f"{args.input}: nothing to classify for these models; they read {wanted}")
        writer.commit()
    where = args.output if args.output is not None else "stdout"
    seconds = time.perf_counter() - start
    console.print(f"wrote {_count(total, 'prediction')} to {where} ({seconds:.1f}s)", markup=False, highlight=False)
    return 0


def _report(job: str, counts: Any) -> None:
    """One line per model: what it made of the input (counts and line numbers, never a field's value)."""
    from harness.report.console import console

    text = f"  {job}: {_count(counts.records, 'input')}, {_count(counts.units, 'unit')}, "
    text += _count(counts.predictions, "prediction")
    if counts.skipped:
        lines = ", ".join(map(str, counts.skipped_lines)) + (" ..." if counts.skipped > 5 else "")
        text += f"; {_count(counts.skipped, 'input')} not for this model (line{_s(counts.skipped)} {lines})"
    if counts.empty:
        lines = ", ".join(map(str, counts.empty_lines)) + (" ..." if counts.empty > 5 else "")
        text += f"; {_count(counts.empty, 'input')} with nothing to classify (line{_s(counts.empty)} {lines})"
    console.print(text, markup=False, highlight=False)


def _count(n: int, noun: str) -> str:
    """``1 input``, ``2 inputs``."""
    return f"{n} {noun}{_s(n)}"


def _s(n: int) -> str:
    return "" if n == 1 else "s"
