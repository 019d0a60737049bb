"""The pathologies (tasks) per region and their label vocabularies.

Each pathology is one classification head per level. Label lists are ordered from "nothing"
to "worst", so a class index is an ordinal severity (quadratic kappa is meaningful) and
rank correlations between tasks are meaningful too.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness_spine.levels import REGIONS

SEVERITY = ("normal", "mild", "moderate", "severe")
DISC = ("none", "bulge", "protrusion", "extrusion")
PRESENCE = ("absent", "present")


@dataclass(frozen=True)
class Pathology:
    """One per-level finding: its label names (ordered), the regions it applies to, a description."""

    name: str
    labels: tuple[str, ...]
    regions: tuple[str, ...]
    description: str

    @property
    def ordinal(self) -> bool:
        """Graded severities (more than two ordered labels) as opposed to absent/present."""
        return len(self.labels) > 2


PATHOLOGIES: tuple[Pathology, ...] = (
    Pathology("canal_stenosis", SEVERITY, REGIONS, "spinal canal stenosis at the level"),
    Pathology("left_foraminal", SEVERITY, REGIONS, "left neural foraminal narrowing"),
    Pathology("right_foraminal", SEVERITY, REGIONS, "right neural foraminal narrowing"),
    Pathology("disc", DISC, REGIONS, "disc displacement: bulge, protrusion or extrusion"),
    Pathology("facet_arthropathy", SEVERITY, REGIONS, "facet joint arthropathy (hypertrophy, arthrosis)"),
    Pathology("cord_signal", PRESENCE, ("cervical",), "abnormal intramedullary cord signal (myelopathy) at the level"),
    Pathology("subarticular_stenosis", SEVERITY, ("lumbar",), "subarticular (lateral recess) stenosis, worse side"),
    Pathology("annular_fissure", PRESENCE, REGIONS, "annular fissure / high-intensity zone of the disc"),
    Pathology("hemangioma", PRESENCE, REGIONS, "incidental vertebral body hemangioma adjacent to the level"),
)
_BY_NAME = {p.name: p for p in PATHOLOGIES}


def region_pathologies(region: str) -> tuple[Pathology, ...]:
    """The pathologies annotated in ``region`` ("cervical" or "lumbar"), in column order."""
    return tuple(p for p in PATHOLOGIES if region in p.regions)


def pathology(name: str) -> Pathology:
    return _BY_NAME[name]


def task_name(region: str, pathology_name: str) -> str:
    """``("cervical", "disc") -> "cervical.disc"``: the registered task name."""
    return f"{region}.{pathology_name}"
