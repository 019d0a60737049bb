"""``harness run``: the protocol (STL, predictors, MTL runs, groupings), gaps and predictor scores."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.commands.common import load_context, task_owners
from harness.core.config import PROFILES, RunConfig
from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.core.plugins import Registries
    from harness.protocol.plan import Plan

log = logging.getLogger("harness")


def add_command(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "run", help="train STL and MTL models, measure the MTL-STL gaps, the predictors and their scores"
    )
    p.add_argument("--tasks", help="comma-separated task names (default: every task of the --plugin plugins)")
    p.add_argument("--group", help="comma-separated group of the all-task MTL run (default: all selected tasks)")
    p.add_argument("--pairs", action="store_true", default=None, help="also train every task pair (pair-gap matrix)")
    p.add_argument(
        "--stages",
        help="comma-separated stages to run, in protocol order: stl,init,all,pairs,groups "
        "(default: stl,init,all,groups; --pairs adds pairs)",
    )
    p.add_argument(
        "--groupers",
        help="comma-separated groupers whose groups are trained: NAME or NAME:PREDICTOR "
        "(default: config key groupers, affinity:tag,cluster:cka_linear)",
    )
    p.add_argument("--model", help="preset (minilm, tiny), local model folder, or hub id (with --online)")
    p.add_argument(
        "--profile",
        default="default",
        choices=tuple(PROFILES),
        help="smoke: tiny model, small slice; science-smoke: tiny model, the whole protocol with pairs "
        "and 3 seeds; default: MiniLM (default: %(default)s)",
    )
    p.add_argument("--seeds", type=int, help="number of seeds (seed, seed+1, ...)")
    p.add_argument("--output", type=Path, help="run directory (default: runs/<plugin>-<timestamp>)")
    p.add_argument("--config", type=Path, help="TOML file of config keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--data", type=Path, help="data root or file for the task loaders (plugin-specific)")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE", help="loader option")
    p.add_argument(
        "--leaderboard",
        type=Path,
        metavar="DIR",
        help="record the finished run in this leaderboard folder (one new file in DIR/runs/; config key leaderboard)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its saved state")
    p.add_argument(
        "--report-to",
        metavar="TRACKER",
        help="log training curves and the run's values to an experiment tracker: tensorboard, in "
        "RUN_DIR/tensorboard (pip install 'harness[tensorboard]'; config key report_to)",
    )
    p.add_argument(
        "--job-store",
        metavar="DIR",
        help="folder of finished jobs shared across runs: a job another run finished is reused, not trained "
        "(default: $HARNESS_JOB_STORE or $HARNESS_CACHE/jobs; none = no store; config key job_store)",
    )
    p.add_argument(
        "--executor",
        choices=("sequential", "local", "ray"),
        help="where jobs run: sequential (this process, the default), local (--workers processes here), "
        "ray (Ray tasks; pip install 'harness[ray]') (config key executor)",
    )
    p.add_argument("--workers", type=int, help="--executor local: jobs at once (default: one per GPU, or 2)")
    p.add_argument("--ray-address", help="--executor ray: the cluster to join (default: start a local Ray)")
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.set_defaults(func=cmd_run)


def select_tasks(args: argparse.Namespace, registries: Any) -> list[str]:
    if args.tasks:
        names = [t.strip() for t in args.tasks.split(",") if t.strip()]
        for name in names:
            registries.tasks.get(name)  # unknown name: error with the known ones and a did-you-mean
        return names
    owners = task_owners(args)
    if not owners:
        raise ConfigError("name the tasks: --plugin NAME (all its tasks) or --tasks a,b,...")
    names = [e.name for e in registries.tasks if e.plugin in owners]
    if not names:
        raise ConfigError(f"plugin(s) {', '.join(sorted(owners))} registered no tasks")
    return names


def _output_dir(args: argparse.Namespace, acc: Any) -> Path:
    if args.output is not None:
        return args.output
    from accelerate.utils import broadcast_object_list

    label = "-".join(args.plugin) or "run"
    name = [f"runs/{label}-{time.strftime('%Y%m%d-%H%M%S')}"]
    broadcast_object_list(name)  # every rank writes to the main process's folder
    return Path(name[0])


def check_groupers(text: str, registries: Any, stages: tuple[str, ...]) -> tuple[str, ...]:
    """``--groupers`` items validated before any training: known names, a predictor where one is used."""
    from harness.protocol.science import parse_grouper

    items = tuple(s.strip() for s in text.split(",") if s.strip())
    for item in items:
        name, arg = parse_grouper(item)
        grouper = registries.groupers.get(name)  # unknown: the known ones and a did-you-mean
        if grouper.uses == "predictor":
            if arg is None:
                raise ConfigError(f"--groupers {item}: {name} groups by a predictor; write {name}:PREDICTOR")
            registries.predictors.get(arg)
        elif arg is not None:
            raise ConfigError(f"--groupers {item}: {name} takes no predictor; write {name}")
        if grouper.uses == "pair_gaps" and "pairs" not in stages:
            raise ConfigError(f"--groupers {item}: needs the measured pair gaps; add --pairs")
    return items


def cmd_run(args: argparse.Namespace) -> int:
    import os

    from harness.core import config as configs
    from harness.core.plugins import build_registries
    from harness.core.trackers import require as require_trackers
    from harness.protocol.execute import make_accelerator
    from harness.protocol.executors import check_executor
    from harness.protocol.plan import LoadSpec, PluginSpec, make_plan, parse_stages

    cfg = configs.resolve(
        args.profile,
        args.config,
        args.set,
        model=args.model,
        seeds=args.seeds,
        pairs=args.pairs,
        groupers=args.groupers,
        leaderboard=None if args.leaderboard is None else str(args.leaderboard),
        report_to=args.report_to,
        job_store=args.job_store,
        executor=args.executor,
        workers=args.workers,
        ray_address=args.ray_address,
    )
    require_trackers(cfg.report_to)  # a missing tracker package fails before anything is trained or written
    registries = build_registries(args.manager)
    selected = select_tasks(args, registries)
    group = [t.strip() for t in args.group.split(",")] if args.group else None
    stages = parse_stages(args.stages, bool(args.pairs) if args.stages else cfg.pairs)
    groupers = check_groupers(cfg.groupers, registries, stages)
    ctx = load_context(args.data, args.data_option, seed=cfg.data_seed, profile=configs.DATA_PROFILES[args.profile])
    plugins = PluginSpec(
        tuple(args.plugin),
        None if args.tasks_dir is None else str(args.tasks_dir),
        os.environ.get("HARNESS_PLUGIN_MODULES", ""),
    )
    plan = make_plan(selected, group, cfg, stages=stages, groupers=groupers, load=LoadSpec.of(ctx), plugins=plugins)
    acc = make_accelerator(cfg)
    check_executor(cfg, acc.num_processes)  # before anything is written
    run_dir = _output_dir(args, acc)
    run_info = {
        "profile": args.profile,
        "config": cfg.to_dict(),
        "plugins": sorted(args.plugin),
        "tasks": list(plan.tasks),
        "group": list(plan.group),
        "stages": list(plan.stages),
        "groupers": list(plan.groupers),
        "data": str(args.data) if args.data else None,
        "data_options": dict(ctx.options),
    }
    from harness.protocol import rundir
    from harness.training.model import check_model

    check_model(cfg.model, cfg.max_length)  # a bad --model or max_length fails before anything is written
    if cfg.leaderboard:
        from harness.commands.leaderboard import check_leaderboard_dir

        check_leaderboard_dir(Path(cfg.leaderboard))
    from harness.protocol.jobstore import check_root, store_root

    check_root(store_root(cfg.job_store))  # an unwritable store fails before anything is written
    lock = rundir.prepare(run_dir, run_info, args.resume, acc)  # refuse an existing run before announcing one
    try:
        return _execute(args, cfg, plan, registries, run_dir, run_info, acc)
    finally:
        if lock is not None:
            lock.release()  # the run directory is free for a --resume


def _execute(
    args: argparse.Namespace,
    cfg: RunConfig,
    plan: Plan,
    registries: Registries,
    run_dir: Path,
    run_info: dict[str, Any],
    acc: Any,
) -> int:
    """The prepared and locked run: the protocol's jobs, the tables, the leaderboard record."""
    from harness.core.trackers import run_tracking_dir
    from harness.protocol.experiment import run_experiment
    from harness.report.console import console, print_table
    from harness.report.tables import results_table

    pairs = len(plan.stage_jobs("pairs"))
    log.info(
        "run %s: %d STL + %d init + %d all-task MTL + %d pair jobs (+ groupers' groups), stages %s, %d process(es), "
        "model %s",
        run_dir,
        len(plan.stage_jobs("stl")),
        len(plan.stage_jobs("init")),
        len(plan.stage_jobs("all")),
        pairs,
        ",".join(plan.stages),
        acc.num_processes,
        cfg.model,
    )
    if cfg.report_to and acc.is_main_process:
        log.info("reporting to %s: tensorboard --logdir %s", cfg.report_to, run_tracking_dir(run_dir, cfg.report_to))
    start = time.perf_counter()
    try:
        results = run_experiment(plan, args.manager, registries, run_dir, args.resume, run_info)
    except KeyboardInterrupt:
        log.warning(
            "interrupted: finished jobs and saved epochs are kept; continue with the same command, "
            "--output %s --resume",
            run_dir,
        )
        raise
    if acc.is_main_process:
        from harness.report.tables import print_science

        print_table(results_table(results))
        print_science(results)
        from harness.commands.inspect import reused_line

        reused_line(results["jobs"])
        console.print(f"run directory: {run_dir} ({time.perf_counter() - start:.0f}s)")
        if cfg.leaderboard:
            from harness.commands.leaderboard import record_run

            path, new = record_run(run_dir, Path(cfg.leaderboard))
            said = (
                f"recorded on the leaderboard: {path}"
                if new
                else f"already on the leaderboard (the same job results, resumed or reused): {path}"
            )
            console.print(said, markup=False, highlight=False)
        if args.json:
            from harness.commands.inspect import emit_json

            emit_json(results)
    return 0
