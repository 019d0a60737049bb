"""The annotated report: what user data and the generator both produce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Report:
    """One MRI report and its per-level labels.

    ``labels`` maps a canonical level (``"C5-C6"``) to pathology -> label name. A level absent
    from ``labels`` is unannotated; a pathology absent at a level is unannotated there (both
    become ``MISSING_LABEL``). ``split`` is "train", "dev", "test" or None (assigned later).
    ``text`` is protected health information in real data: never log it or put it in errors.
    ``unlisted`` says what a level absent from ``labels`` means: "unannotated" (no row) or
    "normal" (every pathology at its first label, when the report has text for the level);
    None leaves it to the loader (``--data-option unlisted``, default "unannotated").
    """

    report_id: str
    region: str
    text: str = field(repr=False)  # kept out of reprs, tracebacks and assertion messages
    labels: Mapping[str, Mapping[str, str]]
    split: str | None = None
    unlisted: str | None = None  # one of UNLISTED, or None


#: What a level left out of a report's labels means (user data, ``unlisted``); the first is the default.
UNLISTED = ("unannotated", "normal")
