"""Corpus 2: mechanisms through which the planted relatedness changes what MTL gains.

In corpus 1 every label is written plainly in its level's snippet and every split is densely
labelled, so a model can read any label on its own: label correlation gives a shared encoder
nothing to pass on, and the planted groups do not show in MTL-STL gaps. Corpus 2 keeps
corpus 1's labels (same seed, same planted model, same clean and released labels, same
splits) and adds two mechanisms:

* **Label scarcity on train** (``scarce``, ``scarce_fraction``): each ``scarce`` pathology is
  annotated on only ``scarce_fraction`` of the region's *train* reports (at least one report),
  drawn per pathology and region from its own seeded stream; on the other train reports it is
  unannotated (``MISSING_LABEL``) at every level. Dev and test stay dense, so gaps stay
  measurable. A dense task of the same group then teaches the shared encoder what the scarce
  task needs (correlated severities, the same severity words); an unrelated dense task
  (hemangioma) does not.
* **Canal grade stated only through the disc** (``implied``): where a disc (bulge or worse)
  narrows the canal, with probability ``implied`` the level states the canal's grade only as
  the disc's effect on the thecal sac and cord, as radiologists often write it: "effacing the
  ventral CSF" (mild), "abutting the ventral cord" (moderate), "compressing the cord" (severe);
  in the lumbar spine the epidural fat and the cauda equina. The level's findings then name
  neither the canal nor a grade word for it, and the disc phrase has no grade-like size word
  ("mild", "minimal"): the canal grade is read off the disc sentence. The decision uses its own
  random stream. The impression, which the segmenter never reads, still names the grade.

Splits: corpus 2 assigns them itself (``splits.assign_splits`` with the generator's seed, on
the labels before scarcity: the rule the loader applies to corpus 1 with that data seed) and
writes them into each report, so a corpus written by ``harness spine generate`` loads with the
same splits. With both mechanisms off (``scarce=none``, ``implied=0``) corpus 2 is corpus 1
with its splits written in.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError
from harness_spine.schema import region_pathologies, task_name
from harness_spine.splits import assign_splits

if TYPE_CHECKING:
    from harness_spine.generator import SyntheticReport

#: Corpus 2 defaults: canal stenosis (related to disc and both foramina) and right foraminal
#: narrowing (related to the left one) are scarce; the rest, hemangioma included, are dense.
SCARCE: tuple[str, ...] = ("canal_stenosis", "right_foraminal")
SCARCE_FRACTION = 0.1
IMPLIED = 1.0
NO_SCARCE = "none"  # the option value for "no scarce pathology"


def parse_scarce(value: str) -> tuple[str, ...]:
    """``"canal_stenosis,right_foraminal"`` -> a tuple of names; ``"none"`` or ``""`` -> ()."""
    if value.strip().lower() == NO_SCARCE:
        return ()
    return tuple(name.strip() for name in value.split(",") if name.strip())


def check_scarce(names: Sequence[str], known: Sequence[str]) -> None:
    """ConfigError for an unknown or repeated pathology name, with a suggestion."""
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"scarce: unknown pathology {name!r}{hint} (known: {', '.join(known)}; or {NO_SCARCE!r})")
    if len(set(names)) != len(names):
        raise ConfigError(f"scarce: a pathology is named twice in {', '.join(names)}")


def annotated_reports(train_reports: int, fraction: float) -> int:
    """How many train reports keep a scarce pathology's labels: ``round(fraction * n)``, at least 1."""
    return min(train_reports, max(1, round(fraction * train_reports)))


def withhold(
    reports: Sequence[SyntheticReport], region: str, scarce: Iterable[str], fraction: float, seed: int
) -> list[SyntheticReport]:
    """The reports with their splits written in and the scarce pathologies' labels removed
    from every train report not drawn to keep them (see the module docstring)."""
    splits = assign_splits([s.report for s in reports], region, seed)
    train = [s.report.report_id for s in reports if splits[s.report.report_id] == "train"]
    present = {p.name for p in region_pathologies(region)}
    withheld: dict[str, set[str]] = {}  # report id -> pathologies it is not annotated for
    for name in scarce:
        if name not in present:
            continue
        rng = random.Random(f"harness-spine:{seed}:{region}:scarce:{name}")
        kept = set(rng.sample(train, annotated_reports(len(train), fraction)))
        for report_id in train:
            if report_id not in kept:
                withheld.setdefault(report_id, set()).add(name)
    out = []
    for s in reports:
        gone = withheld.get(s.report.report_id, set())
        labels = {lv: {p: v for p, v in ls.items() if p not in gone} for lv, ls in s.report.labels.items()}
        report = dataclasses.replace(s.report, labels=labels, split=splits[s.report.report_id])
        out.append(dataclasses.replace(s, report=report))
    return out


def summary(reports: Sequence[SyntheticReport], region: str) -> dict[str, Any]:
    """What the mechanisms did in one region, for ground_truth.json: ``labelled_fraction`` per
    task and split (labelled levels / annotated levels), and ``implied``: how many levels with a
    disc and a narrowed canal state the canal grade only through the disc, out of how many."""
    levels: dict[str, list[Any]] = {}
    for s in reports:
        levels.setdefault(str(s.report.split), []).extend(s.report.labels.values())
    labelled = {
        task_name(region, p.name): {
            split: round(sum(p.name in labels for labels in rows) / len(rows), 4)
            for split, rows in sorted(levels.items())
            if rows
        }
        for p in region_pathologies(region)
    }
    candidates = [
        lv in s.implied
        for s in reports
        for lv, labels in s.clean_labels.items()
        if labels["disc"] != "none" and labels["canal_stenosis"] != "normal"
    ]
    return {"labelled_fraction": labelled, "implied": {"levels": sum(candidates), "of": len(candidates)}}
