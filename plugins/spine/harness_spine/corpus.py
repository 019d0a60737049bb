"""The per-level snippet datasets behind every spine task, built once per process.

``load_region(region, ctx)`` returns ``{"train": Dataset, "dev": Dataset, "test": Dataset}``
with one row per annotated level: ``text`` (the level's snippet from the segmenter),
``report_id``, ``level`` and one int64 column per pathology of the region, named after it,
holding the class index or ``MISSING_LABEL``. Every task of a region reads the same rows in
the same order (they share an ``input_group``), and the result is cached in-process, so the
corpus is generated and segmented once for all of a region's tasks.

Source: ``ctx.data_dir`` set -> the user's JSONL (``userdata.py``), read with the
``--data-option`` key ``unlisted`` (``normal`` or ``unannotated``, the default: what a level left
out of a report's labels means, unless the report says so itself); else the synthetic corpus,
sized by ``ctx.profile`` (``CORPUS_PRESETS``) and ``--data-option`` keys ``reports``,
``noise``, ``relatedness``, ``seed``, ``corpus`` (1 or 2, see ``generator.py``) and corpus 2's
``scarce``, ``scarce_fraction``, ``implied`` (``mechanisms.py``). For either source,
``impression`` (``true`` or ``false``) says whether a level's snippet also takes the
impression's sentences that name it (segmenter rule 8): by default true for user data and
corpus 3 (as ``harness predict`` reads reports), false for corpus 1 and 2 (as they were
measured). Keys are also accepted as ``spine.reports`` etc.

Rows: a level is a row when it has at least one label. Under ``unlisted=normal`` a level left
out of the labels is labelled normal (every pathology at its first label) and is a row only
when the segmenter finds text for it (its own sentences, or "the remaining levels are
unremarkable"): a level the report does not mention has nothing to classify, so it is left out
and counted in one log line, never made an empty-text row. A labelled level whose text the
segmenter cannot find keeps its row with ``text == ""`` (the labels are the annotator's
word; a warning counts such rows, naming report ids only). A report in which the segmenter
finds no level at all gets a warning of its own, per report id, and its rows are not in
that count. A level with text but no label
is not a row. Splits are by report (all levels of a report in one split): the ``split``
field when the data give one, else a seeded 70/15/15 split stratified by the report's worst
canal stenosis, reproducible from ``ctx.seed``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.api import MISSING_LABEL, SPLITS, LoadContext
from harness.errors import ConfigError, DataError
from harness_spine import mechanisms, userdata
from harness_spine.generator import CORPUS_VERSIONS, DEFAULT_CORPUS, MECHANISM_FIELDS, Corpus, GeneratorConfig, generate
from harness_spine.levels import REGION_LEVELS
from harness_spine.reports import UNLISTED, Report
from harness_spine.schema import region_pathologies
from harness_spine.segmenter import segment
from harness_spine.splits import assign_splits

if TYPE_CHECKING:
    import datasets

log = logging.getLogger(__name__)

#: Synthetic corpus per run profile: reports per region, label noise, relatedness.
CORPUS_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"reports": 100, "noise": 0.05, "relatedness": 0.8},  # ~585 cervical / ~493 lumbar level rows
    "default": {"reports": 150, "noise": 0.05, "relatedness": 0.8},  # sized for the 15-minute main job
}
OPTIONS: dict[str, Callable[[str], Any]] = {
    "reports": int,
    "noise": float,
    "relatedness": float,
    "seed": int,
    "corpus": int,
    "scarce": mechanisms.parse_scarce,  # comma-separated pathologies, or "none"
    "scarce_fraction": float,
    "implied": float,
    "unlisted": str,
    "impression": lambda value: value == "true",  # checked against CHOICES first
}
CHOICES = {
    "unlisted": UNLISTED,
    "corpus": tuple(map(str, CORPUS_VERSIONS)),
    "impression": ("true", "false"),
}  # options with a fixed set of values
USER_DATA_OPTIONS = frozenset({"unlisted"})
# How snippets are cut, for either source; the options in neither set size the synthetic corpus.
SNIPPET_OPTIONS = frozenset({"impression"})
OPTION_PREFIX = "spine."


@dataclass(frozen=True)
class UserSource:
    path: str
    mtime_ns: int  # part of the cache key: an edited file is read again
    size: int
    unlisted: str = UNLISTED[0]  # default meaning of a level left out of a report's labels


def corpus_source(ctx: LoadContext) -> UserSource | GeneratorConfig:
    """Where the region's reports come from, as a hashable cache key (options validated)."""
    options = spine_options(ctx.options)
    if ctx.data_dir is not None:
        synthetic = sorted(set(options) - USER_DATA_OPTIONS - SNIPPET_OPTIONS)
        if synthetic:
            raise ConfigError(
                f"--data-option {', '.join(synthetic)} only applies to the synthetic spine corpus; "
                "remove it or drop --data"
            )
        path = userdata.resolve(Path(ctx.data_dir))
        stat = path.stat()
        return UserSource(str(path), stat.st_mtime_ns, stat.st_size, options.get("unlisted", UNLISTED[0]))
    user_only = sorted(set(options) & USER_DATA_OPTIONS)
    if user_only:
        raise ConfigError(
            f"--data-option {', '.join(user_only)} only applies to --data (your annotated reports); "
            "remove it or give --data"
        )
    if ctx.profile not in CORPUS_PRESETS:
        raise ConfigError(
            f"the spine corpus has no size for profile {ctx.profile!r}; known: {', '.join(CORPUS_PRESETS)}"
        )
    settings = {
        **CORPUS_PRESETS[ctx.profile],
        "seed": ctx.seed,
        **{k: v for k, v in options.items() if k not in SNIPPET_OPTIONS},
    }
    corpus_2_only = sorted(set(options) & set(MECHANISM_FIELDS))
    if settings.get("corpus", DEFAULT_CORPUS) != 2 and corpus_2_only:
        raise ConfigError(
            f"--data-option {', '.join(corpus_2_only)} only applies to corpus 2; remove it or add corpus=2"
        )
    return GeneratorConfig(region="both", **settings)


def spine_options(options: Mapping[str, str]) -> dict[str, Any]:
    """The spine keys of ``--data-option``, parsed. Other plugins' keys are left alone, but
    an unknown ``spine.*`` key or a near miss of a spine key ("report") is an error."""
    out: dict[str, Any] = {}
    for raw, value in options.items():
        key = raw[len(OPTION_PREFIX) :] if raw.startswith(OPTION_PREFIX) else raw
        if key not in OPTIONS:
            close = difflib.get_close_matches(key, list(OPTIONS), n=1, cutoff=0.75)
            if raw.startswith(OPTION_PREFIX) or close:
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown spine data option {raw!r}{hint} (known: {', '.join(OPTIONS)})")
            continue
        if key in CHOICES and value not in CHOICES[key]:
            close = difflib.get_close_matches(value.lower(), CHOICES[key], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"data option {raw}={value!r}: expected one of {', '.join(CHOICES[key])}{hint}")
        try:
            out[key] = OPTIONS[key](value)
        except (TypeError, ValueError):
            raise ConfigError(f"data option {raw}={value!r}: expected {OPTIONS[key].__name__}") from None
    return out


def load_region(region: str, ctx: LoadContext) -> dict[str, datasets.Dataset]:
    """The region's split datasets for this context (cached; see the module docstring).
    A split without labelled levels is absent from the result."""
    source = corpus_source(ctx)
    return _build(region, source, ctx.seed, spine_options(ctx.options).get("impression", reads_impression(source)))


def load_split(region: str, split: str, ctx: LoadContext) -> datasets.Dataset:
    """One split: what every spine task's loader returns."""
    if split not in SPLITS:
        raise DataError(f"spine {region}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    splits = load_region(region, ctx)
    if split not in splits:
        where = ctx.data_dir if ctx.data_dir is not None else "the synthetic corpus"
        raise DataError(f"{where}: no labelled {region} levels in split {split!r}; give some reports that split")
    return splits[split]


def region_reports(region: str, source: UserSource | GeneratorConfig) -> list[Report]:
    """The region's annotated reports from a source."""
    if isinstance(source, UserSource):
        reports = [r for r in _read_user(source) if r.region == region]
        if not reports:
            raise DataError(f"{source.path}: no {region} reports; the {region}.* tasks need some")
        return reports
    return [s.report for s in _generate(source).of_region(region)]


@functools.lru_cache(maxsize=4)
def _read_user(source: UserSource) -> tuple[Report, ...]:
    return tuple(userdata.read_reports(Path(source.path)))


@functools.lru_cache(maxsize=4)
def _generate(config: GeneratorConfig) -> Corpus:
    return generate(config)


@functools.lru_cache(maxsize=8)
def _build(
    region: str, source: UserSource | GeneratorConfig, seed: int, impression: bool
) -> dict[str, datasets.Dataset]:
    reports = region_reports(region, source)
    splits = assign_splits(reports, region, seed)
    default = source.unlisted if isinstance(source, UserSource) else UNLISTED[0]
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    without_text: list[str] = []
    unlisted_without_text: list[str] = []
    for report in reports:
        snippets = dict(segment(report.text, report.region, impression))
        unlisted = report.unlisted or default
        level_rows = report_rows(report, snippets, unlisted)
        if unlisted == "normal" and snippets:
            unlisted_without_text += [
                report.report_id for lv in REGION_LEVELS[region] if lv not in report.labels and lv not in snippets
            ]
        if not snippets:
            log.warning(
                "spine %s: report %s: no vertebral level found in its findings text; its %d labelled levels have "
                "empty snippets (check the level spellings and the section headers)",
                region, report.report_id, len(level_rows),
            )  # fmt: skip
        else:
            without_text += [report.report_id for row in level_rows if not row["text"]]
        rows[splits[report.report_id]].extend(level_rows)
    if without_text:
        ids = sorted(set(without_text))
        log.warning(
            "spine %s: %d labelled levels have no findings text (empty snippet), in reports %s%s",
            region, len(without_text), ", ".join(ids[:5]), " ..." if len(ids) > 5 else "",
        )  # fmt: skip
    if unlisted_without_text:
        ids = sorted(set(unlisted_without_text))
        log.info(
            "spine %s: %d unlisted levels (taken as normal) have no findings text and are left out (no row), "
            "in reports %s%s",
            region, len(unlisted_without_text), ", ".join(ids[:5]), " ..." if len(ids) > 5 else "",
        )  # fmt: skip
    return {split: _dataset(region, split, rows[split]) for split in SPLITS if rows[split]}


def reads_impression(source: UserSource | GeneratorConfig) -> bool:
    """Whether snippets take the impression's level sentences too (segmenter rule 8), unless the
    ``impression`` data option says otherwise: for user data and corpus 3, as ``harness
    predict`` does; corpus 1 and 2 keep their findings-only snippets, so what was measured on
    them stays reproducible (their files written by ``harness spine generate`` load as the
    built-in corpus with ``--data-option impression=false``)."""
    return isinstance(source, UserSource) or source.corpus not in (1, 2)


def report_rows(report: Report, snippets: Mapping[str, str], unlisted: str = UNLISTED[0]) -> list[dict[str, Any]]:
    """One row per labelled level of a report, in canonical level order; ``snippets`` are the
    report's level -> snippet from the segmenter. With ``unlisted="normal"``, a level absent
    from the labels is labelled normal when it has a snippet (see the module docstring)."""
    pathologies = region_pathologies(report.region)
    out = []
    for level in REGION_LEVELS[report.region]:
        if level in report.labels:
            labels = report.labels[level]
        elif unlisted == "normal" and snippets.get(level):
            labels = {p.name: p.labels[0] for p in pathologies}
        else:
            continue
        if not labels:
            continue
        row: dict[str, Any] = {"text": snippets.get(level, ""), "report_id": report.report_id, "level": level}
        for p in pathologies:
            row[p.name] = p.labels.index(labels[p.name]) if p.name in labels else MISSING_LABEL
        out.append(row)
    return out


def features(region: str) -> datasets.Features:
    import datasets

    columns = {
        "text": datasets.Value("string"),
        "report_id": datasets.Value("string"),
        "level": datasets.Value("string"),
    }
    columns.update({p.name: datasets.Value("int64") for p in region_pathologies(region)})
    return datasets.Features(columns)


def _dataset(region: str, split: str, rows: list[dict[str, Any]]) -> datasets.Dataset:
    """An in-memory dataset whose fingerprint is a hash of its content, so the core's
    tokenization cache is reused across processes and runs."""
    import datasets

    feats = features(region)
    columns = {name: [row[name] for row in rows] for name in feats}
    digest = hashlib.sha256(json.dumps([region, split, columns], sort_keys=True).encode()).hexdigest()[:16]
    base = datasets.Dataset.from_dict(columns, features=feats)
    return datasets.Dataset(base.data, info=base.info, fingerprint=f"spine-{digest}")
