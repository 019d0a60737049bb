"""The human output channel: rich on stderr. Machine-readable output goes to stdout (``--json``)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def setup_logging(verbose: bool = False, main_process: bool = True) -> None:
    """Diagnostics through logging, rendered by rich on stderr; other ranks only warn."""
    level = logging.DEBUG if verbose else logging.INFO if main_process else logging.WARNING
    handler = RichHandler(console=console, show_path=False, show_time=console.is_terminal, markup=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for noisy in ("datasets", "transformers", "accelerate", "filelock", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
