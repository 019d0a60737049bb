"""A seeded generator of synthetic cervical and lumbar spine MRI reports with per-level labels.

Three corpus versions (``GeneratorConfig.corpus``), all with the same planted labels:

* **1**, the original: every label written plainly in a full sentence naming its pathology and
  one of four grade words, every split densely labelled. Kept bit for bit.
* **2** adds the mechanisms of ``mechanisms.py`` (label scarcity on train, canal grades
  stated only through the disc), through which the planted relatedness changes what
  multi-task training gains.
* **3**, the default: corpus 1's labels, splits and rows in the wider wording of real reports
  (``wide.py``: telegraphic lines, abbreviations, grade ranges and synonyms, effects on the
  sac, cord and roots instead of grades, anatomy and causes instead of pathology names, sides
  in either order, findings spread over sentences), grades shared by consecutive levels
  stated once for the range, and an impression in the same wording that may hold a finding the
  findings leave out (its snippets take the impression's level sentences, segmenter rule 8).
  Its text is written from a copy of corpus 1's random stream, so every label is corpus 1's.

``generate(GeneratorConfig(...))`` is a pure function of its config: each region draws from
its own ``random.Random`` seeded with ``"harness-spine:{seed}:{region}"`` (no global state),
so the cervical half of a "both" corpus equals the cervical-only corpus. Labels come from the
planted latent model in ``structure.py``; the text (``render.py`` + the layout here) states
them truthfully; label noise is applied after the text is written, from a separate random
stream, so changing ``noise`` changes labels only, never text.

Annotation conventions (they decide which labels a report gets):

* A described level gets every pathology; an unmentioned finding there is normal/absent.
* Normal levels may be left out of the findings. When the report then says "the remaining
  levels are unremarkable", the left-out levels are labelled normal (that sentence is their
  snippet); when it says nothing, they are unannotated (absent from ``labels``).
* With probability ``ANNOTATION_SKIP`` an annotator skipped one pathology at one level.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import ConfigError
from harness_spine import __version__, layout, mechanisms
from harness_spine.levels import REGION_LEVELS, REGIONS
from harness_spine.reports import Report
from harness_spine.schema import PATHOLOGIES, region_pathologies
from harness_spine.structure import (
    label_dependence,
    model_description,
    sample_level,
    sample_report_latents,
    task_groups,
)

#: Probability that one (level, pathology) label was left blank by the annotator.
ANNOTATION_SKIP = 0.02
CORPUS_VERSIONS = (1, 2, 3)
DEFAULT_CORPUS = 3
#: Knobs of corpus 2 only (an error with corpus 1 unless left at their defaults).
MECHANISM_FIELDS = ("scarce", "scarce_fraction", "implied")


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's knobs. Defaults are what ``harness spine generate`` uses and equal the
    "default" corpus preset, so a generated file loaded with ``--data`` gives the same datasets
    as the built-in corpus (same seed; corpus 1 and 2 with ``--data-option impression=false``,
    since user data reads the impression and they do not)."""

    reports: int = 150  # reports per region (the default preset)
    region: str = "both"  # "cervical", "lumbar" or "both"
    noise: float = 0.05  # probability that a released label is replaced by a random other label
    relatedness: float = 0.8  # 0: every label independent; 1: strongest planted coupling
    seed: int = 0
    corpus: int = DEFAULT_CORPUS  # 1: plain and dense (the original); 2: with mechanisms.py; 3: the wider wording
    scarce: tuple[str, ...] = mechanisms.SCARCE  # corpus 2: pathologies annotated on few train reports
    scarce_fraction: float = mechanisms.SCARCE_FRACTION  # corpus 2: share of train reports annotated for them
    implied: float = mechanisms.IMPLIED  # corpus 2: P(a disc-narrowed canal is stated only through the disc)

    def __post_init__(self) -> None:
        if self.region not in (*REGIONS, "both"):
            raise ConfigError(f"region {self.region!r} is unknown; use cervical, lumbar or both")
        if not isinstance(self.reports, int) or self.reports < 1:
            raise ConfigError(f"reports must be a positive integer, got {self.reports!r}")
        for name in ("noise", "relatedness", "implied"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")
        if not 0.0 < self.scarce_fraction <= 1.0:
            raise ConfigError(f"scarce_fraction must be above 0 and at most 1, got {self.scarce_fraction!r}")
        if self.corpus not in CORPUS_VERSIONS:
            raise ConfigError(f"corpus must be one of {', '.join(map(str, CORPUS_VERSIONS))}, got {self.corpus!r}")
        mechanisms.check_scarce(self.scarce, [p.name for p in PATHOLOGIES])
        changed = [f for f in MECHANISM_FIELDS if getattr(self, f) != getattr(GeneratorConfig, f)]
        if self.corpus != 2 and changed:
            raise ConfigError(f"{', '.join(changed)} only apply to corpus 2; drop them or use corpus 2")

    @property
    def regions(self) -> tuple[str, ...]:
        return REGIONS if self.region == "both" else (self.region,)

    def describe(self) -> dict[str, Any]:
        """The config as JSON-ready values; corpus 1 and 3 leave out the knobs they do not have."""
        out = asdict(self)
        if self.corpus != 2:
            for name in MECHANISM_FIELDS:
                del out[name]
        else:
            out["scarce"] = list(self.scarce)
        return out


@dataclass(frozen=True)
class SyntheticReport:
    """A generated report with what only the generator knows."""

    report: Report  # what a user would have: text and released (noisy) labels
    clean_labels: Mapping[str, Mapping[str, str]]  # labels before noise and skips, annotated levels only
    segments: Mapping[str, tuple[str, ...]]  # segmenter truth: level -> its findings sentences, in order
    implied: frozenset[str] = frozenset()  # levels whose canal grade is stated only through the disc (corpus 2)
    # corpus 3: (level, pathology) stated only in the impression ("left_foraminal": both foramina)
    impression_only: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Corpus:
    config: GeneratorConfig
    reports: tuple[SyntheticReport, ...] = field(default_factory=tuple)

    def of_region(self, region: str) -> list[SyntheticReport]:
        return [r for r in self.reports if r.report.region == region]


def generate(config: GeneratorConfig) -> Corpus:
    """The corpus for ``config``: ``config.reports`` reports per region, deterministic."""
    out: list[SyntheticReport] = []
    for region in config.regions:
        text_rng = random.Random(f"harness-spine:{config.seed}:{region}")
        label_rng = random.Random(f"harness-spine:{config.seed}:{region}:annotation")
        implied_rng = random.Random(f"harness-spine:{config.seed}:{region}:implied")
        reports = [
            _one_report(text_rng, label_rng, implied_rng, region, index, config) for index in range(config.reports)
        ]
        if config.corpus == 2:
            reports = mechanisms.withhold(reports, region, config.scarce, config.scarce_fraction, config.seed)
        out.extend(reports)
    return Corpus(config, tuple(out))


def _one_report(
    rng: random.Random,
    label_rng: random.Random,
    implied_rng: random.Random,
    region: str,
    index: int,
    config: GeneratorConfig,
) -> SyntheticReport:
    latents = sample_report_latents(rng)
    clean = {lv: sample_level(rng, region, lv, latents, config.relatedness) for lv in REGION_LEVELS[region]}
    if config.corpus == 1:
        draft = layout.write_report(rng, region, clean, latents)
    else:
        # Corpus 2 and 3 write from a copy of the stream, then let the stream advance as corpus
        # 1's text would, so the next report's labels (and every label) are corpus 1's.
        copy = random.Random()
        copy.setstate(rng.getstate())
        if config.corpus == 2:
            draft = layout.write_report(copy, region, clean, latents, config.implied, implied_rng)
        else:
            draft = layout.write_report(copy, region, clean, latents, wide=True)
        layout.write_report(rng, region, clean, latents)
    annotated = {lv: labels for lv, labels in clean.items() if lv not in draft.unannotated}
    released = _annotate(label_rng, region, annotated, config.noise)
    report = Report(report_id=f"{region}-{index + 1:05d}", region=region, text=draft.text, labels=released)
    return SyntheticReport(report, annotated, draft.segments, draft.implied, draft.impression_only)


def _annotate(
    rng: random.Random, region: str, clean: Mapping[str, Mapping[str, str]], noise: float
) -> dict[str, dict[str, str]]:
    """Released labels: noise, then skips. Draws a fixed number of values per label, so the
    same labels flip at every noise rate (a higher rate flips a superset)."""
    paths = region_pathologies(region)
    out: dict[str, dict[str, str]] = {}
    for level, labels in clean.items():
        kept: dict[str, str] = {}
        for p in paths:
            flip, other, skip = rng.random(), rng.choice([x for x in p.labels if x != labels[p.name]]), rng.random()
            if skip < ANNOTATION_SKIP:
                continue
            kept[p.name] = other if flip < noise else labels[p.name]
        out[level] = kept
    return out


def ground_truth(corpus: Corpus) -> dict[str, Any]:
    """What the generator planted and what the labels show; JSON-ready, no report text.

    ``groups``: per region, the intended task groups (degeneration, weak, independent, anti).
    ``dependence``: per region, pairwise NMI and Spearman matrices over annotated levels of
    the released labels; ``dependence_clean`` the same before noise and skips.
    """
    regions = corpus.config.regions
    released = {r: [s.report.labels for s in corpus.of_region(r)] for r in regions}
    clean = {r: [s.clean_labels for s in corpus.of_region(r)] for r in regions}
    extra = {"mechanisms": {r: mechanisms.summary(corpus.of_region(r), r) for r in regions}}
    return {
        "format": "harness-spine ground truth 1",
        "generator": {"version": __version__, **corpus.config.describe()},
        **(extra if corpus.config.corpus == 2 else {}),
        "reports": {r: len(released[r]) for r in regions},
        "groups": {r: task_groups(r) for r in regions},
        "model": model_description(),
        "noise_realised": _flip_rate(corpus.reports),
        "label_counts": {r: _label_counts(released[r], r) for r in regions},
        "dependence": {r: label_dependence(released[r], r) for r in regions},
        "dependence_clean": {r: label_dependence(clean[r], r) for r in regions},
    }


def _flip_rate(reports: Sequence[SyntheticReport]) -> float:
    changed = total = 0
    for s in reports:
        for level, labels in s.report.labels.items():
            for name, value in labels.items():
                total += 1
                changed += value != s.clean_labels[level][name]
    return round(changed / total, 6) if total else 0.0


def _label_counts(labels: Sequence[Mapping[str, Mapping[str, str]]], region: str) -> dict[str, dict[str, int]]:
    counts = {p.name: dict.fromkeys(p.labels, 0) for p in region_pathologies(region)}
    for report in labels:
        for level_labels in report.values():
            for name, value in level_labels.items():
                counts[name][value] += 1
    return counts
