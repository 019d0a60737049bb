"""One ``track(iterable)``: a rich bar on a terminal, plain lines otherwise, nothing off the main process."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("harness")


def track(iterable: Iterable[T], description: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    if not enabled:
        yield from iterable
        return
    if total is None:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
    if sys.stderr.isatty():
        from rich.progress import Progress

        from harness.console import console

        with Progress(console=console, transient=True) as progress:
            yield from progress.track(iterable, total=total, description=description)
        return
    yield from _plain(iterable, description, total)


def _plain(iterable: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    """A line every ~25% of a long loop, one at the end of a short one; no carriage returns in CI logs."""
    start = time.perf_counter()
    level = logging.INFO if total is None or total >= 20 else logging.DEBUG  # short loops: one debug line
    marks = {max(1, round(total * q / 4)) for q in (1, 2, 3, 4)} if total and total >= 20 else {total}
    count = 0
    for count, item in enumerate(iterable, 1):
        yield item
        if count in marks:
            log.log(level, "%s: %d/%d (%.1fs)", description, count, total, time.perf_counter() - start)
    if total is None:
        log.log(level, "%s: %d done (%.1fs)", description, count, time.perf_counter() - start)
