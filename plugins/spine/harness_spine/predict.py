"""The spine tasks' input readers for ``harness predict``: a whole report to one snippet per level.

A record is a report in the user-data format (``userdata.py``), of which only these fields
are read: ``text`` (required: the whole report) and ``report_id`` and ``region`` (optional);
``labels``, ``split``, ``meta`` and any other field are ignored, so an annotated file predicts
as it is. The reader of region R segments the report with the training pipeline's own
segmenter (``segmenter.segment``: FINDINGS sentences grouped by vertebral level, then the
impression's sentences that name a level, rule 8), as user data and corpus 3 are segmented
for training, so a snippet at prediction time is the text such a model was trained on (a
model trained on corpus 1 or 2, findings only, also sees those impression sentences). A report whose
``region`` is the other region is not for R's models (None); without ``region``, each
region's reader takes the levels of its own region that the segmenter finds.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from harness.api import DataError, InputReader, Unit
from harness_spine.levels import REGIONS
from harness_spine.segmenter import segment

#: The reader name of each region's tasks (``TaskSpec.input_reader``).
READERS = {region: f"spine.{region}_report" for region in REGIONS}


def read_report(region: str, record: Mapping[str, Any], text_fields: tuple[str, ...]) -> list[Unit] | None:
    """``[(level, (snippet,)), ...]`` of one report for ``region``'s tasks, in level order; None
    when the report is of the other region. ``DataError`` (naming the field, never its value) for
    a report without text or with an unknown region."""
    text = record.get("text")
    if not isinstance(text, str):
        got = "no field 'text'" if "text" not in record else f"'text' is {_a(_type(text))}"
        raise DataError(f"field 'text': expected the whole report as a string ({got})")
    stated = record.get("region")
    if stated is not None:
        if not isinstance(stated, str) or stated not in REGIONS:  # the value is never shown: it is the input's
            what = f"{len(stated)} characters" if isinstance(stated, str) else f"{_type(stated)}, not a string"
            raise DataError(f"field 'region': unknown region ({what}); expected one of: {', '.join(REGIONS)}")
        if stated != region:
            return None
    return [(level, (snippet,)) for level, snippet in segment(text, region, impression=True)]


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _a(kind: str) -> str:
    """``null``, ``an int``, ``a list``."""
    return kind if kind == "null" else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def readers() -> list[InputReader]:
    """One reader per region (the spine tasks have one text field, the snippet)."""
    return [
        InputReader(
            name,
            functools.partial(read_report, region),
            f"a whole {region} spine MRI report (JSONL: text, report_id, region) -> one snippet per vertebral level",
            id_field="report_id",
            unit="level",
        )
        for region, name in READERS.items()
    ]
