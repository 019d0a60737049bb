"""The human output channel: rich on stderr. Machine-readable output goes to stdout (``--json``)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit with 1 here; harness.cli.main ends every closed pipe alike (exit 141)
        raise BrokenPipeError


# Off a terminal (CI logs, pipes) keep lines long instead of wrapping at 80 columns.
console = _Console(
    stderr=True, width=None if sys.stderr.isatty() else 160, emoji=False
)  # ':x:' in a message stays text


def print_table(table: Table) -> None:
    """Every table the CLI prints for people: the rich table on a terminal, plain lines otherwise.

    Off a terminal (a pipe, a CI log) the table becomes its title, a header line, a dashed rule
    and one line per row: columns aligned with spaces (right-justified columns stay so), cells
    never wrapped or cut, no box-drawing characters. String cells are rich markup, as on a terminal.
    """
    if console.is_terminal:
        for column in table.columns:  # a narrow terminal wraps cells onto more lines, never cuts them
            column.overflow = "fold"
        console.print(table)
        return
    header = [_plain(column.header) for column in table.columns]
    cells = [[_plain(cell) for cell in column.cells] for column in table.columns]
    rows = [list(row) for row in zip(*cells, strict=True)] if cells else []
    widths = [max(len(text) for text in [head, *column]) for head, column in zip(header, cells, strict=True)]
    right = [column.justify == "right" for column in table.columns]

    def line(texts: list[str]) -> str:
        padded = [t.rjust(w) if r else t.ljust(w) for t, w, r in zip(texts, widths, right, strict=True)]
        return "  ".join(padded).rstrip()

    lines = ([_plain(table.title)] if table.title else []) + [line(header), line(["-" * w for w in widths])]
    for row in rows:
        lines.append(line(row))
    for text in lines:
        console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _plain(cell: RenderableType | None) -> str:
    from rich.text import Text

    if cell is None:
        return ""
    if isinstance(cell, str):
        cell = Text.from_markup(cell)
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.split())  # one physical line per row


def setup_logging(verbose: bool = False, main_process: bool = True) -> None:
    """Diagnostics through logging: rich on a terminal, plain lines otherwise; other ranks only warn."""
    level = logging.DEBUG if verbose else logging.INFO if main_process else logging.WARNING
    handler: logging.Handler
    if console.is_terminal:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False, markup=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S", handlers=[handler], force=True)
    for noisy in ("datasets", "transformers", "accelerate", "filelock", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
