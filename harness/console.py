"""The human output channel: rich on stderr. Machine-readable output goes to stdout (``--json``)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console

# Off a terminal (CI logs, pipes) keep lines long instead of wrapping at 80 columns.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


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
