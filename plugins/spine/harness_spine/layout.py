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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Draft:
    text: str
    segments: dict[str, tuple[str, ...]]  # level -> findings sentences, in text order
    unannotated: frozenset[str]  # levels left out without a "remaining levels" sentence
    implied: frozenset[str] = frozenset()  # levels whose canal grade is stated only through the disc


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
) -> Draft:
    """Text and segmenter truth for one report's clean labels; consumes ``rng`` deterministically.

    With ``decide`` (corpus 2), a described level whose disc narrows the canal states the canal
    grade only through the disc with probability ``implied``, drawn from ``decide``.
    """
    style = _style(rng)
    levels = REGION_LEVELS[region]
    normal = [lv for lv in levels if _severity(clean[lv], region) == 0]
    omitted = normal if style.omit != "describe" and len(normal) < len(levels) else []
    described = [lv for lv in levels if lv not in omitted]

    def name(level: str) -> str:
        return spell(level, style.spelling or rng.choice(SPELLING_STYLES))

    blocks = [_general(rng, region, clean, style, name)]
    through_disc: set[str] = set()
    blocks.append(_levels(rng, region, clean, described, style, name, _Implier(decide, implied, through_disc)))
    tail = _trailing(rng, region, style)
    if omitted and style.omit == "statement":
        tail.insert(0, [Sentence(rng.choice(_REMAINING), tuple(omitted))])
    blocks.append(tail)
    if style.lowercase:
        blocks = [[[Sentence(s.text.lower(), s.levels) for s in line] for line in block] for block in blocks]
    findings = _join_blocks(rng, blocks, style)
    impression = _impression(rng, region, clean, name)
    text = _assemble(rng, region, latents, findings, impression, style)
    segments: dict[str, list[str]] = {}
    for block in blocks:
        for line in block:
            for sentence in line:
                for level in sentence.levels:
                    segments.setdefault(level, []).append(sentence.text)
    unannotated = frozenset(omitted) if style.omit == "silent" else frozenset()
    return Draft(text, {lv: tuple(s) for lv, s in segments.items()}, unannotated, frozenset(through_disc))


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
) -> list[list[Sentence]]:
    lines: list[list[Sentence]] = []
    if not style.prose and rng.random() < 0.3:
        lines.append([Sentence("Disc levels:")])
    for group in _groups(rng, region, clean, levels, style):
        labels = clean[group[0]]
        if _severity(labels, region) == 0 and rng.random() < 0.7:
            texts = normal_level(rng, style.voice)
        else:
            texts = render_level(rng, region, group[0], labels, style.voice, implier(group, labels))
        label = _group_name(rng, group, name)
        first = _name_first_sentence(rng, label, texts[0], style.prose)
        lines.append([Sentence(t, group) for t in [first, *texts[1:]]])
    if style.prose and rng.random() < 0.5:
        return [[s for line in lines for s in line]]
    return lines


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
