"""Report layout for the generator: sections, level paragraphs, spelling, impression.

``write_report`` turns one report's clean labels into text and records, for every findings
sentence, the levels it belongs to (the segmenter's ground truth). Styles vary per report:
structured "C5-C6: ..." lines or prose paragraphs, level spelling (C5-C6, C5-6, C5/C6,
C5–C6, C5 C6, mixed), lower case, impression first or last, normal levels described,
combined ("C3-C4 and C4-C5: Unremarkable."), or left out with or without a "remaining
levels are unremarkable" sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from harness_spine import wide as wide_text
from harness_spine.levels import REGION_LEVELS, SPELLING_STYLES, spell
from harness_spine.render import Voice, cap, lower_first, normal_level, render_level
from harness_spine.schema import region_pathologies
from harness_spine.structure import ReportLatents

Namer = Callable[[str], str]  # canonical level -> its spelling in this report
_SPELLING_WEIGHTS = (0.35, 0.25, 0.1, 0.05, 0.1, 0.05, 0.1)  # per SPELLING_STYLES


@dataclass(frozen=True)
class Sentence:
    text: str
    levels: tuple[str, ...] = ()  # the levels the sentence belongs to (segmenter truth)


@dataclass(frozen=True)
class Style:
    spelling: str | None  # one of SPELLING_STYLES, or None for a different one per mention
    prose: bool  # prose paragraphs instead of "C5-C6: ..." lines
    lowercase: bool
    impression_first: bool
    omit: str  # normal levels: "describe", "statement" (left out, "remaining ... unremarkable"), "silent"
    combine: float  # probability of merging a run of levels with identical labels
    worst_first: bool  # levels by decreasing severity instead of cranio-caudal
    voice: Voice
    wide: wide_text.WideVoice | None = None  # corpus 3: the wider wording of ``wide.py``


@dataclass(frozen=True)
class Draft:
    text: str
    segments: dict[str, tuple[str, ...]]  # level -> its sentences in text order (findings; corpus 3: then impression)
    unannotated: frozenset[str]  # levels left out without a "remaining levels" sentence
    implied: frozenset[str] = frozenset()  # levels whose canal grade is stated only through the disc
    impression_only: frozenset[tuple[str, str]] = frozenset()  # corpus 3: (level, pathology) stated only there


def _style(rng: random.Random) -> Style:
    voice = Voice(
        abbreviate=rng.choice([0.0, 0.0, 0.0, 0.5]),
        negatives=rng.uniform(0.1, 0.8),
        hedge=rng.choice([0.0, 0.15]),
        implied=0.3,
        shuffle=0.2,
    )
    return Style(
        spelling=None if rng.random() < 0.1 else rng.choices(SPELLING_STYLES, _SPELLING_WEIGHTS)[0],
        prose=rng.random() < 0.4,
        lowercase=rng.random() < 0.08,
        impression_first=rng.random() < 0.1,
        omit=rng.choices(["describe", "statement", "silent"], [0.6, 0.25, 0.15])[0],
        combine=rng.choice([0.0, 0.7]),
        worst_first=rng.random() < 0.08,
        voice=voice,
    )


def _severity(labels: Mapping[str, str], region: str) -> int:
    return sum(p.labels.index(labels[p.name]) for p in region_pathologies(region))


def write_report(
    rng: random.Random,
    region: str,
    clean: Mapping[str, Mapping[str, str]],
    latents: ReportLatents,
    implied: float = 0.0,
    decide: random.Random | None = None,
    wide: bool = False,
) -> Draft:
    """Text and segmenter truth for one report's clean labels; consumes ``rng`` deterministically.

    With ``decide`` (corpus 2), a described level whose disc narrows the canal states the canal
    grade only through the disc with probability ``implied``, drawn from ``decide``. With
    ``wide`` (corpus 3), levels are worded by ``wide.py`` and a grade shared by consecutive
    levels may be stated once for the range ("Mild facet arthropathy from L3-L4 through L5-S1.").
    """
    style = _style(rng)
    ranged = False  # corpus 3: grades shared by consecutive levels may be stated once for the range
    if wide:
        voice = wide_text.voice(rng)
        style = replace(style, wide=voice, prose=style.prose and not voice.terse)
        ranged = rng.random() < 0.35
        if ranged:
            style = replace(style, combine=0.0)  # a range sentence covers levels described one by one
    levels = REGION_LEVELS[region]
    normal = [lv for lv in levels if _severity(clean[lv], region) == 0]
    omitted = normal if style.omit != "describe" and len(normal) < len(levels) else []
    described = [lv for lv in levels if lv not in omitted]

    def name(level: str) -> str:
        return spell(level, style.spelling or rng.choice(SPELLING_STYLES))

    blocks = [_general(rng, region, clean, style, name)]
    through_disc: set[str] = set()
    spans = _ranges(rng, region, clean, described, name) if ranged else []
    closing: list[Sentence] = []
    only: list[tuple[str, Sentence]] = []
    if style.wide is not None:
        closing, only = _wide_impression(rng, region, clean, described, name, style.wide)
        if only:
            style = replace(style, combine=0.0)  # the impression-only finding is left out of one level
            spans = [*spans, *only]
    blocks.append(_levels(rng, region, clean, described, style, name, _Implier(decide, implied, through_disc), spans))
    tail = _trailing(rng, region, style)
    if omitted and style.omit == "statement":
        tail.insert(0, [Sentence(rng.choice(_REMAINING), tuple(omitted))])
    blocks.append(tail)
    if style.lowercase:
        blocks = [[[Sentence(s.text.lower(), s.levels) for s in line] for line in block] for block in blocks]
    findings = _join_blocks(rng, blocks, style)
    if style.wide is not None:
        if style.lowercase:
            closing = [Sentence(s.text.lower(), s.levels) for s in closing]
        numbered = rng.random() < 0.5
        impression = "\n".join(f"{i}. {s.text}" if numbered else s.text for i, s in enumerate(closing, 1))
    else:
        impression = _impression(rng, region, clean, name)
    text = _assemble(rng, region, latents, findings, impression, style)
    segments: dict[str, list[str]] = {}
    for block in [*blocks, [closing]]:
        for line in block:
            for sentence in line:
                for level in sentence.levels:
                    if sentence.text:  # an impression-only marker has no text of its own
                        segments.setdefault(level, []).append(sentence.text)
    unannotated = frozenset(omitted) if style.omit == "silent" else frozenset()
    impression_only = frozenset((s.levels[0], pathology) for pathology, s in only)
    return Draft(
        text, {lv: tuple(s) for lv, s in segments.items()}, unannotated, frozenset(through_disc), impression_only
    )


_REMAINING = [
    "The remaining levels are unremarkable.",
    "Remaining disc levels are normal.",
    "No significant abnormality at the other levels.",
    "The other levels are unremarkable.",
    "Otherwise, the remaining disc levels are within normal limits.",
]

# (structured label, structured texts, prose texts)
_GENERAL = {
    "cervical": [
        ("Alignment", ["Normal cervical lordosis.", "Straightening of the cervical lordosis.", "Maintained."],
         ["Alignment is normal.", "There is straightening of the normal cervical lordosis."]),
        ("Vertebral bodies", ["Heights are maintained.", "Vertebral body heights are maintained. No fracture."],
         ["Vertebral body heights are maintained.", "No acute fracture."]),
        ("Marrow", ["Normal signal.", "Unremarkable."],
         ["Bone marrow signal is normal.", "Marrow signal is unremarkable."]),
        ("Craniocervical junction", ["Unremarkable."], ["The craniocervical junction is unremarkable."]),
    ],
    "lumbar": [
        ("Alignment", ["Normal lumbar lordosis.", "Mild levoconvex curvature.", "Maintained."],
         ["Alignment is normal.", "Normal lumbar lordosis is maintained."]),
        ("Vertebral bodies", ["Heights are maintained.", "Vertebral body heights are maintained. No fracture."],
         ["Vertebral body heights are maintained.", "No acute fracture."]),
        ("Marrow", ["Normal signal.", "Unremarkable."],
         ["Bone marrow signal is normal.", "Marrow signal is unremarkable."]),
        ("Conus", ["Terminates at L1, normal in signal.", "Normal in position and signal."],
         ["The conus medullaris terminates at L1 and is normal in signal."]),
    ],
}  # fmt: skip
_TRAILING = {
    "cervical": [("Paraspinal soft tissues", ["Unremarkable."], ["Paraspinal soft tissues are unremarkable."]),
                 ("Posterior fossa", ["Unremarkable as visualized."],
                  ["The visualized posterior fossa is unremarkable."])],
    "lumbar": [("Paraspinal soft tissues", ["Unremarkable."], ["Paraspinal soft tissues are unremarkable."]),
               ("Other", ["Visualized retroperitoneum is unremarkable."],
                ["Visualized retroperitoneal structures are unremarkable."])],
}  # fmt: skip


def _topic_lines(
    rng: random.Random, topics: Sequence[tuple[str, list[str], list[str]]], prose: bool
) -> list[list[Sentence]]:
    lines = []
    for label, structured, prose_texts in topics:
        if prose:
            lines.append([Sentence(rng.choice(prose_texts))])
        else:
            parts = rng.choice(structured).split(". ")
            texts = [p if p.endswith(".") else p + "." for p in parts]
            lines.append([Sentence(f"{label}: {texts[0]}")] + [Sentence(t) for t in texts[1:]])
    return lines


def _general(
    rng: random.Random, region: str, clean: Mapping[str, Mapping[str, str]], style: Style, name: Namer
) -> list[list[Sentence]]:
    topics = [t for t in _GENERAL[region] if t[0] == "Alignment" or rng.random() < 0.7]
    lines = _topic_lines(rng, topics, style.prose)
    if region == "cervical":
        cord = [lv for lv in REGION_LEVELS[region] if clean[lv]["cord_signal"] == "present"]
        if cord:
            where = " and ".join(name(lv) for lv in cord)
            text = f"Abnormal cord signal at {where}, see below."
            lines.append([Sentence(text if style.prose else f"Cord: {text}", tuple(cord))])
        elif rng.random() < 0.8:
            text = rng.choice(["The spinal cord is normal in caliber and signal.", "Cord: Normal caliber and signal."])
            lines.append([Sentence(text)])
    if style.prose:
        return [[s for line in lines for s in line]]
    return lines


def _trailing(rng: random.Random, region: str, style: Style) -> list[list[Sentence]]:
    topics = [t for t in _TRAILING[region] if rng.random() < 0.4]
    return _topic_lines(rng, topics, style.prose)


def _groups(
    rng: random.Random, region: str, clean: Mapping[str, Mapping[str, str]], levels: Sequence[str], style: Style
) -> list[tuple[str, ...]]:
    """Consecutive levels with identical labels (and no hemangioma, whose wording names a
    vertebra) may be described together."""
    groups: list[list[str]] = []
    all_levels = REGION_LEVELS[region]
    for level in levels:
        prev = groups[-1][-1] if groups else None
        if (
            prev is not None
            and all_levels.index(level) == all_levels.index(prev) + 1
            and clean[level] == clean[prev]
            and clean[level]["hemangioma"] == "absent"
            and rng.random() < style.combine
        ):
            groups[-1].append(level)
        else:
            groups.append([level])
    out = [tuple(g) for g in groups]
    if style.worst_first:
        out.sort(key=lambda g: -_severity(clean[g[0]], region))
    return out


def _group_name(rng: random.Random, group: tuple[str, ...], name: Namer) -> str:
    names = [name(lv) for lv in group]
    if len(names) == 1:
        return names[0]
    if len(names) > 2 and rng.random() < 0.6:
        return f"{names[0]} through {names[-1]}"
    return rng.choice([" and ".join([", ".join(names[:-1]), names[-1]]), ", ".join(names)])


@dataclass(frozen=True)
class _Implier:
    """Decides, per described level group, whether the canal grade is stated only through the disc."""

    decide: random.Random | None
    probability: float
    chosen: set[str]  # the levels so written, collected here

    def __call__(self, group: tuple[str, ...], labels: Mapping[str, str]) -> bool:
        if self.decide is None or labels["disc"] == "none" or labels["canal_stenosis"] == "normal":
            return False
        if self.decide.random() >= self.probability:
            return False
        self.chosen.update(group)
        return True


def _levels(
    rng: random.Random,
    region: str,
    clean: Mapping[str, Mapping[str, str]],
    levels: Sequence[str],
    style: Style,
    name: Namer,
    implier: _Implier,
    spans: Sequence[tuple[str, Sentence]] = (),
) -> list[list[Sentence]]:
    lines: list[list[Sentence]] = []
    if not style.prose and rng.random() < 0.3:
        lines.append([Sentence("Disc levels:")])
    elsewhere: dict[str, set[str]] = {}
    for pathology, sentence in spans:
        for level in sentence.levels:
            elsewhere.setdefault(level, set()).add(pathology)
    shown = [(p, s) for p, s in spans if s.text]  # range sentences; the rest are impression-only markers
    before = [[s] for _, s in shown if rng.random() < 0.4]
    lines.extend(before)
    for group in _groups(rng, region, clean, levels, style):
        labels = clean[group[0]]
        if style.wide is not None:
            pen = wide_text.Pen(rng, style.wide)
            if _severity(labels, region) == 0:
                texts = [cap(wide_text.normal_verdict(pen, style.prose))]
            else:
                texts = wide_text.render_level(
                    rng, region, group[0], labels, style.wide, frozenset(elsewhere.get(group[0], ()))
                )
        elif _severity(labels, region) == 0 and rng.random() < 0.7:
            texts = normal_level(rng, style.voice)
        else:
            texts = render_level(rng, region, group[0], labels, style.voice, implier(group, labels))
        label = _group_name(rng, group, name)
        first = _name_first_sentence(rng, label, texts[0], style.prose)
        lines.append([Sentence(t, group) for t in [first, *texts[1:]]])
    lines.extend([s] for _, s in shown if [s] not in before)
    if style.prose and rng.random() < 0.5:
        return [[s for line in lines for s in line]]
    return lines


def _ranges(
    rng: random.Random, region: str, clean: Mapping[str, Mapping[str, str]], described: Sequence[str], name: Namer
) -> list[tuple[str, Sentence]]:
    """Corpus 3: sentences stating one grade once for a run of consecutive described levels
    that share it (facet arthropathy, or a disc bulge), as (pathology, sentence)."""
    out: list[tuple[str, Sentence]] = []
    order = REGION_LEVELS[region]
    for pathology in ("facet_arthropathy", "disc"):
        runs: list[list[str]] = []
        for level in described:
            value = clean[level][pathology]
            if value in ("normal", "none") or (pathology == "disc" and value != "bulge"):
                continue
            prev = runs[-1][-1] if runs else None
            if prev is not None and order.index(level) == order.index(prev) + 1 and clean[prev][pathology] == value:
                runs[-1].append(level)
            else:
                runs.append([level])
        for run in runs:
            if len(run) < 2 or rng.random() < 0.3:
                continue
            first, last = name(run[0]), name(run[-1])
            where = rng.choice(
                [f"from {first} through {last}", f"at {first} through {last}", f"{first} to {last}",
                 f"at {' and '.join([', '.join(name(lv) for lv in run[:-1]), name(run[-1])])}"]
            )  # fmt: skip
            if pathology == "disc":
                text = rng.choice([f"Disc bulges {where}.", f"Multilevel disc bulging, {where}.",
                                   f"{'DOCs' if region == 'cervical' else 'DBs'} {where}.",
                                   f"There are disc bulges {where}, without focal herniation."])  # fmt: skip
            else:
                grade = clean[run[0]][pathology]
                words = {"mild": ["mild", "mild", "minimal"], "moderate": ["moderate", "mod"],
                         "severe": ["severe", "advanced"]}[grade]  # fmt: skip
                g = rng.choice(words)
                text = rng.choice([f"{cap(g)} facet arthropathy {where}.", f"Facet hypertrophy, {g}, {where}.",
                                   f"Multilevel {g} facet arthrosis, {where}.",
                                   f"Facets: {g} degenerative change {where}."])  # fmt: skip
            out.append((pathology, Sentence(text, tuple(run))))
    return out


def _wide_impression(
    rng: random.Random,
    region: str,
    clean: Mapping[str, Mapping[str, str]],
    described: Sequence[str],
    name: Namer,
    voice: wide_text.WideVoice,
) -> tuple[list[Sentence], list[tuple[str, Sentence]]]:
    """Corpus 3's impression: up to three worst levels, each one sentence naming its level and
    stating its canal grade, foramina and disc herniation in the wider wording; and, with
    probability 0.15 per stated level, one finding of that level that the findings leave out
    (impression-only), as (pathology, marker) pairs for ``_levels``' ``spans``."""
    pen = wide_text.Pen(rng, voice)
    scored = sorted(REGION_LEVELS[region], key=lambda lv: -_severity(clean[lv], region))
    out: list[Sentence] = []
    only: list[tuple[str, Sentence]] = []
    for level in scored[:3]:
        labels = clean[level]
        parts: list[tuple[str, str]] = []  # (pathology, phrase)
        if labels["canal_stenosis"] != "normal":
            parts.append(("canal_stenosis", wide_text.canal_positive(pen, region, labels["canal_stenosis"])))
        left, right = labels["left_foraminal"], labels["right_foraminal"]
        if left != "normal" or right != "normal":
            parts.append(("left_foraminal", wide_text.foramina_phrase(pen, left, right)))
        if labels["disc"] in ("protrusion", "extrusion"):
            parts.append(("disc", wide_text.disc_noun(pen, region, labels["disc"], located=False)))
        if not parts:
            continue
        joined = ", ".join(p for _, p in parts)
        text = rng.choice([f"{name(level)}: {joined}.", f"{cap(joined)} at {name(level)}."])
        out.append(Sentence(text, (level,)))
        if not only and level in described and rng.random() < 0.15:
            pathology = rng.choice([p for p, _ in parts])
            only.append((pathology, Sentence("", (level,))))
    if not out:
        quiet = all(_severity(clean[lv], region) == 0 for lv in REGION_LEVELS[region])
        out = [Sentence(f"Unremarkable MRI of the {region} spine." if quiet else "No significant stenosis.")]
    elif rng.random() < 0.4:
        out.append(Sentence(rng.choice(["Multilevel degenerative changes as above.", "Otherwise mild spondylosis."])))
    return out, only


def _name_first_sentence(rng: random.Random, label: str, text: str, prose: bool) -> str:
    if not prose:
        return rng.choices([f"{label}: {text}", f"{label} - {text}", f"Level {label}: {text}"], [0.8, 0.1, 0.1])[0]
    if len(text.split()) < 3:  # "Unremarkable.", "No SCS or NFN."
        return rng.choice([f"{label}: {text}", f"{label} level: {text}"])
    if rng.random() < 0.25:
        return f"{text[:-1]} at {label}."
    return rng.choices([f"At {label}, {lower_first(text)}", f"{label}: {text}"], [0.7, 0.3])[0]


def _join_blocks(rng: random.Random, blocks: list[list[list[Sentence]]], style: Style) -> str:
    sep = "\n\n" if rng.random() < 0.5 else "\n"
    parts = ["\n".join(" ".join(s.text for s in line) for line in block) for block in blocks if block]
    return sep.join(parts)


_HISTORY = {
    "cervical": ["neck pain radiating to the {side} arm", "cervical radiculopathy", "numbness in both hands",
                 "chronic neck pain, evaluate for stenosis", "neck pain after a fall"],
    "lumbar": ["low back pain radiating to the {side} leg", "lumbar radiculopathy", "sciatica",
               "neurogenic claudication", "chronic low back pain"],
}  # fmt: skip


def _assemble(
    rng: random.Random, region: str, latents: ReportLatents, findings: str, impression: str, style: Style
) -> str:
    area = {"cervical": ["CERVICAL SPINE", "C-SPINE"], "lumbar": ["LUMBAR SPINE", "L-SPINE"]}[region]
    exam = rng.choice(["MRI {a} WITHOUT CONTRAST", "EXAM: MRI {a} WITHOUT CONTRAST", "MR {a} W/O CONTRAST",
                       "MRI OF THE {a} WITHOUT IV CONTRAST"]).format(a=rng.choice(area))  # fmt: skip
    age = max(18, min(90, round(52 + 13 * latents.patient + rng.gauss(0, 5))))
    complaint = rng.choice(_HISTORY[region]).format(side=rng.choice(["left", "right"]))
    history = rng.choice(
        [f"{age}-year-old {rng.choice(['man', 'woman', 'patient'])} with {complaint}.", cap(complaint) + "."]
    )
    technique = rng.choice([
        f"Multiplanar, multisequence MR imaging of the {region} spine was performed without intravenous contrast.",
        "Sagittal T1, T2 and STIR and axial T2 weighted images were obtained.",
    ])  # fmt: skip
    comparison = rng.choice(
        ["None.", "None available.", "Radiographs from the same day.", "Prior MRI from 2 years ago."]
    )
    head = [
        exam,
        f"{rng.choice(['CLINICAL HISTORY', 'HISTORY', 'INDICATION'])}: {history}",
        f"TECHNIQUE: {technique}",
        f"COMPARISON: {comparison}",
    ]
    findings_block = f"FINDINGS: {findings}" if rng.random() < 0.25 else f"FINDINGS:\n{findings}"
    impression_block = f"IMPRESSION:\n{impression}"
    body = [impression_block, findings_block] if style.impression_first else [findings_block, impression_block]
    text = "\n\n".join(head + body)
    if style.lowercase:
        text = text.lower()  # findings are already lower case; sentences stay identical
    return text + "\n"


def _impression(rng: random.Random, region: str, clean: Mapping[str, Mapping[str, str]], name: Namer) -> str:
    scored = sorted(REGION_LEVELS[region], key=lambda lv: -_severity(clean[lv], region))
    items = []
    for level in scored[:3]:
        labels = clean[level]
        parts = []
        if labels["canal_stenosis"] != "normal":
            parts.append(f"{labels['canal_stenosis']} spinal canal stenosis")
        worst = max(
            labels["left_foraminal"], labels["right_foraminal"], key=("normal", "mild", "moderate", "severe").index
        )
        if worst != "normal":
            side = "bilateral" if labels["left_foraminal"] == labels["right_foraminal"] else (
                "left" if labels["left_foraminal"] == worst else "right")  # fmt: skip
            parts.append(f"{worst} {side} neural foraminal narrowing")
        if labels["disc"] in ("protrusion", "extrusion"):
            parts.append(f"disc {labels['disc']}")
        if parts:
            items.append(f"{name(level)}: {', '.join(parts)}.")
    if not items:
        quiet = all(_severity(clean[lv], region) == 0 for lv in REGION_LEVELS[region])
        items = [f"Unremarkable MRI of the {region} spine." if quiet else "No significant canal or foraminal stenosis."]
    elif rng.random() < 0.4:
        items.append("Multilevel degenerative changes as above.")
    numbered = rng.random() < 0.6
    return "\n".join(f"{i}. {cap(t)}" if numbered else cap(t) for i, t in enumerate(items, 1))
