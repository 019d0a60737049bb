"""A seeded generator of synthetic cervical and lumbar spine MRI reports with per-level labels.

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
from harness_spine import __version__, layout
from harness_spine.levels import REGION_LEVELS, REGIONS
from harness_spine.reports import Report
from harness_spine.schema import region_pathologies
from harness_spine.structure import (
    label_dependence,
    model_description,
    sample_level,
    sample_report_latents,
    task_groups,
)

#: Probability that one (level, pathology) label was left blank by the annotator.
ANNOTATION_SKIP = 0.02


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's knobs. Defaults are what ``harness spine generate`` uses and equal the
    "default" corpus preset, so a generated file loaded with ``--data`` gives the same datasets
    as the built-in corpus (same seed)."""

    reports: int = 150  # reports per region (the default preset)
    region: str = "both"  # "cervical", "lumbar" or "both"
    noise: float = 0.05  # probability that a released label is replaced by a random other label
    relatedness: float = 0.8  # 0: every label independent; 1: strongest planted coupling
    seed: int = 0

    def __post_init__(self) -> None:
        if self.region not in (*REGIONS, "both"):
            raise ConfigError(f"region {self.region!r} is unknown; use cervical, lumbar or both")
        if not isinstance(self.reports, int) or self.reports < 1:
            raise ConfigError(f"reports must be a positive integer, got {self.reports!r}")
        for name in ("noise", "relatedness"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {value!r}")

    @property
    def regions(self) -> tuple[str, ...]:
        return REGIONS if self.region == "both" else (self.region,)


@dataclass(frozen=True)
class SyntheticReport:
    """A generated report with what only the generator knows."""

    report: Report  # what a user would have: text and released (noisy) labels
    clean_labels: Mapping[str, Mapping[str, str]]  # labels before noise and skips, annotated levels only
    segments: Mapping[str, tuple[str, ...]]  # segmenter truth: level -> its findings sentences, in order


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
        for index in range(config.reports):
            out.append(_one_report(text_rng, label_rng, region, index, config))
    return Corpus(config, tuple(out))


def _one_report(
    rng: random.Random, label_rng: random.Random, region: str, index: int, config: GeneratorConfig
) -> SyntheticReport:
    latents = sample_report_latents(rng)
    clean = {lv: sample_level(rng, region, lv, latents, config.relatedness) for lv in REGION_LEVELS[region]}
    draft = layout.write_report(rng, region, clean, latents)
    annotated = {lv: labels for lv, labels in clean.items() if lv not in draft.unannotated}
    released = _annotate(label_rng, region, annotated, config.noise)
    report = Report(report_id=f"{region}-{index + 1:05d}", region=region, text=draft.text, labels=released)
    return SyntheticReport(report, annotated, draft.segments)


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
    return {
        "format": "harness-spine ground truth 1",
        "generator": {"version": __version__, **asdict(corpus.config)},
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
