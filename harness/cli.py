"""The ``harness`` command line: a thin shell over the plugin manager.

Every sub-command, the core's own included, is added through the ``register_commands``
hook: the core's first, then each plugin's, plugins in name order. Library errors
(``HarnessError``) and usage errors (a bad flag or value) become one line on stderr and exit
code 2. Output cut off by a closed
pipe (``harness list --json | head -1``) ends the command quietly with exit code 141
(128 + SIGPIPE), the status a shell reports for other tools stopped that way.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from harness import __version__
from harness.errors import HarnessError, Terminated

if TYPE_CHECKING:
    from harness.core.plugins import PluginManager


def common_options(parser: argparse.ArgumentParser) -> None:
    """Options every sub-command accepts (they are read before sub-commands are built)."""
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="load this installed plugin (repeatable); with `run`/`list`, select its tasks",
    )
    parser.add_argument("--tasks-dir", type=Path, metavar="DIR", help="also register the TOML task cards in DIR")
    parser.add_argument(
        "--online",
        action="store_true",
        help="allow the Hugging Face hub (hub model ids, --data-option source=hub); offline otherwise",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, as every other error is: a ``ConfigError``
    naming the command, the flag and the problem, pointing at ``--help`` (exit code 2, as argparse's)."""

    def error(self, message: str) -> NoReturn:
        from harness.errors import ConfigError

        raise ConfigError(f"{self.prog}: {message}; see {self.prog} --help")


class _EarlyParser(argparse.ArgumentParser):
    """The pre-parser of the common options: it never reports; the full parser reports usage errors."""

    def error(self, message: str) -> NoReturn:
        raise _EarlyParseError(message)


class _EarlyParseError(Exception):
    pass


#: Exit code after output was cut off by a closed pipe: 128 + SIGPIPE, as a shell reports for other tools.
BROKEN_PIPE_EXIT = 141


def build_parser(manager: PluginManager) -> argparse.ArgumentParser:
    """The ``harness`` parser: each plugin's ``register_commands`` in ``manager.names()`` order.

    A plugin whose ``register_commands`` raises fails alone: the commands it added are removed.
    """
    parser = Parser(
        prog="harness", description="Should these tasks share one model? Train STL and MTL, measure the gap."
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, fn in manager.impls("register_commands"):
        choices, listed = dict(subparsers.choices), list(subparsers._choices_actions)
        if not manager.call(name, "register_commands", fn, subparsers=subparsers):
            subparsers.choices.clear()  # drop what the failing plugin added before it raised
            subparsers.choices.update(choices)
            subparsers._choices_actions[:] = listed
    _add_common_options(subparsers)
    return parser


def _add_common_options(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Give every (nested) sub-command the common options, unless it defines them itself."""
    for sub in subparsers.choices.values():
        if not any("--plugin" in a.option_strings for a in sub._actions):
            common_options(sub)
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_common_options(action)


def _early_options(argv: list[str]) -> argparse.Namespace:
    pre = _EarlyParser(add_help=False, allow_abbrev=False)
    common_options(pre)
    try:
        return pre.parse_known_args(argv)[0]
    except _EarlyParseError:  # e.g. `--plugin` without a name: the full parser says so, in one line
        return pre.parse_known_args([])[0]


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    early = _early_options(argv)
    if not early.online:  # offline by default: a hub miss would otherwise wait and change cache keys
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    # harness draws its own progress (rich on a terminal, plain lines otherwise); silence tqdm bars
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from harness.report.console import setup_logging

    setup_logging(early.verbose, _is_main_rank())
    _stop_on_sigterm()
    try:
        try:
            return _run(argv, early)
        finally:  # a command may end with SystemExit too
            sys.stdout.flush()  # here, so that a closed pipe is caught below and not at interpreter exit
    except BrokenPipeError:
        _silence_closed_pipe()
        return BROKEN_PIPE_EXIT
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def _stop_on_sigterm() -> None:
    """Stop on SIGTERM as on Ctrl-C: the same cleanup runs (worker processes stopped, job store claims
    released, finished jobs kept) instead of the process vanishing mid-write; exit code 143."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def _run(argv: list[str], early: argparse.Namespace) -> int:
    from harness import commands
    from harness.core.plugins import COMMANDS_PLUGIN, new_manager
    from harness.report.console import console

    try:
        extra: list[tuple[str, object]] = []
        if early.tasks_dir is not None:
            from harness.data.taskdir import TaskDirPlugin, plugin_name

            extra.append((plugin_name(early.tasks_dir), TaskDirPlugin(early.tasks_dir)))
        wanted = [*early.plugin, *(name for name, _ in extra)]
        manager = new_manager(load=wanted, extra=extra, core=[(COMMANDS_PLUGIN, commands)])
        parser = build_parser(manager)
        args = parser.parse_args(argv)
        if getattr(args, "func", None) is None:
            parser.print_help(sys.stderr)
            return 2
        args.manager = manager
        return int(args.func(args) or 0)
    except HarnessError as exc:
        from rich.markup import escape

        if _is_main_rank():
            console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return exc.exit_code


def _silence_closed_pipe() -> None:
    """Point stdout and stderr at /dev/null: Python's own flush at exit must not hit the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # a stream without a file descriptor (captured in tests)
            pass
