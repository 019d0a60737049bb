"""Report text -> one snippet per vertebral level, as in the paper's pipeline.

Rules (in this order), applied to the findings text (``sections.findings_text``: the
FINDINGS sections, or without a FINDINGS header everything outside the other sections;
IMPRESSION, HISTORY, TECHNIQUE, COMPARISON, EXAM and similar are never findings):

1. The findings are cut into logical lines (a hard-wrapped line that continues a sentence
   is joined back), then into sentences (abbreviations such as "e.g." and list numbers do
   not end a sentence; leading bullets are dropped).
2. A sentence that names levels of the report's region ("C5-C6", "c5-6", "C5/C6", "C5‑6"
   with any Unicode dash, "C4-C5 and C5-C6", "C4-5, 5-6 and 6-7", "C3-C4 through C5-C6",
   "L4 on L5"; see ``levels``) belongs to each of them, and they become the *current* levels.
3. A sentence that names only other levels (T1-T2 in a cervical report), an unreadable level
   ("C5-7", "L5-L6"), a vertebra outside the current levels ("hemangioma in the L3 vertebral
   body" after L5-S1), or the conus, belongs to none and clears the current levels: text
   under a level the segmenter cannot read never goes to the level before it.
4. "The remaining levels are unremarkable" (and variants) belongs to every level of the
   region that no findings sentence names, and clears the current levels.
5. On a line that opens with a level heading ("C5-C6:", "- L4-5 -", "Level C3/4:",
   "C4-5, 5-6 and 6-7:"), and in a sentence that says "at this level", mentions of other
   anatomy do not end the level: the sentence belongs to the current levels.
6. Elsewhere, a line that opens with a non-level label ("Alignment:", "Cord:", "Disc
   levels:") or a sentence on a whole-spine topic belongs to none and clears them. Whole-spine
   topics: alignment, lordosis, scoliosis, vertebral body heights, paraspinal and prevertebral
   soft tissues, posterior fossa, retroperitoneum, visualized structures, the conus, ...; bone
   (fracture, marrow) only when stated for the whole spine ("No fracture.", "Marrow signal
   is normal.", "diffuse ..."), not a level's own bone ("Bilateral pars fractures are
   present.", "endplate marrow edema", "Schmorl's node").
7. Any other sentence belongs to the current levels (none before the first level); a blank
   line clears them.
8. With ``impression=True``: a sentence of the closing sections (IMPRESSION, CONCLUSION, ...)
   that names levels of the region belongs to each of them too, after their findings
   sentences ("1. C5-C6: moderate canal stenosis." is added to C5-C6's snippet): a finding
   stated only in the impression still reaches the level, and a level the impression names
   is not one of rule 4's "remaining levels". Rules 2-7 do not apply there; a closing
   sentence that names no level belongs to none. User data, corpus 3 and ``harness
   predict`` segment so; corpus 1 and 2 findings only, as they were measured.

A snippet is its level's sentences joined by one space, in text order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from harness_spine.levels import REGION_LEVELS, find_levels, fold, level_spans, sort_levels, unreadable_levels
from harness_spine.sections import BULLET_RE, LABEL_RE, SENTENCE_ENDS, closing_text, findings_text, starts_item

__all__ = ["findings_text", "logical_lines", "score_segmentation", "segment", "segment_sentences", "split_sentences"]

# Whole-spine topics: anatomy other than the disc levels. Outside a level's heading line, a
# sentence on one ends the current levels.
_WHOLE_SPINE_RE = re.compile(
    r"\b(?:alignment|lordosis|kyphosis|scoliosis|curvature|vertebral body heights|craniocervical|posterior fossa"
    r"|paraspinal|soft tissues?|retroperitone\w*|sacroiliac|visuali[sz]ed|prevertebral|thyroid|conus)\b",
    re.IGNORECASE,
)
# Bone is a whole-spine topic only when stated for the whole spine ("No fracture.", "Marrow
# signal is normal.", "diffuse marrow ..."), not for a level's own bone ("Bilateral pars
# fractures are present.", "Modic endplate marrow edema").
_BONE_RE = re.compile(r"\b(?:fractures?|fx|marrow)\b", re.IGNORECASE)
_SPINE_WIDE_RE = re.compile(
    r"\b(?:no|normal|unremarkable|maintained|preserved|intact|within normal limits|negative|diffuse(?:ly)?"
    r"|throughout|elsewhere|multilevel)\b",
    re.IGNORECASE,
)
_LEVEL_BONE_RE = re.compile(r"\b(?:end ?plates?|subchondral|pars|modic|schmorl\W?s?)\b", re.IGNORECASE)
# "... at this level": about the current levels whatever else it names.
_THIS_LEVEL_RE = re.compile(
    r"\b(?:at|of|to|from) (?:this|these|the same|each|both) (?:disc )?(?:levels?|segments?|interspaces?)\b",
    re.IGNORECASE,
)
# A heading: levels that open the sentence ("C5-C6:", "Level L4-5:", "C4-5, 5-6 and 6-7 -").
_HEADING_LEAD_RE = re.compile(r"\s*(?:levels?\s+)?", re.IGNORECASE)
_HEADING_GAP_RE = re.compile(r"\s*(?:,|,?\s*(?:and|or|&|through|thru|to))?\s*", re.IGNORECASE)
_HEADING_TAIL_RE = re.compile(r"\s*(?:levels?|disc(?:\s+space)?|interspaces?)?\s*(?::|-(?:\s|$))", re.IGNORECASE)
# Single vertebrae of the region's own letters (T is left out: "T2 hyperintense" is a sequence).
_VERTEBRA_RE = {
    "cervical": re.compile(r"(?<![A-Za-z0-9/-])(C)([1-7])(?![\d/-])", re.IGNORECASE),  # C8 is a root, not a vertebra
    "lumbar": re.compile(r"(?<![A-Za-z0-9/-])([LS])(\d)(?![\d/-])", re.IGNORECASE),
}
_CONUS_RE = re.compile(r"\bconus\b", re.IGNORECASE)
_REMAINING_RE = re.compile(
    r"\b(?:remaining|other|rest of the|all other)\b[\w\s,]{0,30}\b(?:levels?|disc spaces?|interspaces?|discs)\b",
    re.IGNORECASE,
)
_ABBREVIATIONS = {"e.g", "i.e", "eg", "ie", "approx", "vs", "dr", "fig", "cf", "mr", "ms", "mrs", "incl"}
_SENTENCE_END_RE = re.compile(r"[.!?]\s+")


def logical_lines(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines) of logical lines (hard wraps joined back)."""
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line:
            if current:
                paragraphs.append(current)
            current = []
            continue
        if current and not current[-1].endswith(SENTENCE_ENDS) and not starts_item(line, current[-1]):
            current[-1] += " " + line  # a hard-wrapped sentence
        else:
            current.append(line)
    if current:
        paragraphs.append(current)
    return paragraphs


def split_sentences(line: str) -> list[str]:
    """Sentences of one logical line; a leading bullet or list number is dropped."""
    bullet = BULLET_RE.match(fold(line))
    line = line[bullet.end() :] if bullet else line
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END_RE.finditer(line):
        token = line[start : m.start()].rsplit(" ", 1)[-1].lower().lstrip("([\"'")
        if token in _ABBREVIATIONS or (token.isdigit() and m.start() - start <= 2):
            continue  # "e.g. ", "approx. ", a list number
        out.append(line[start : m.start() + 1])
        start = m.end()
    tail = line[start:].strip()
    if tail:
        out.append(tail)
    return [s.strip() for s in out if s.strip()]


def segment_sentences(text: str, region: str, impression: bool = False) -> dict[str, list[str]]:
    """Level -> the sentences that belong to it, in text order (rules above; rule 8 with ``impression``)."""
    vocabulary = REGION_LEVELS[region]
    assigned: dict[str, list[str]] = {}
    remaining: list[str] = []
    for paragraph in logical_lines(findings_text(text)):
        current: tuple[str, ...] = ()
        for line in paragraph:
            sentences = split_sentences(line)
            heading = bool(sentences) and _is_heading(sentences[0], region)
            for i, sentence in enumerate(sentences):
                named = find_levels(sentence, region)
                ours = tuple(lv for lv in named if lv in vocabulary)
                if ours and not _CONUS_RE.search(sentence):
                    targets = current = ours
                elif named or _elsewhere(sentence, region, current):
                    targets = current = ()
                elif _REMAINING_RE.search(sentence):
                    remaining.append(sentence)
                    targets = current = ()
                elif heading or _THIS_LEVEL_RE.search(sentence):
                    targets = current
                elif (i == 0 and LABEL_RE.match(sentence)) or _whole_spine(sentence):
                    targets = current = ()
                else:
                    targets = current
                for level in targets:
                    assigned.setdefault(level, []).append(sentence)
    closing: dict[str, list[str]] = {}
    if impression:
        for sentence in closing_sentences(text):
            for level in (lv for lv in find_levels(sentence, region) if lv in vocabulary):
                closing.setdefault(level, []).append(sentence)
    # "the remaining levels": those neither the findings nor (rule 8) the impression name
    unnamed = [lv for lv in vocabulary if lv not in assigned and lv not in closing]
    for sentence in remaining:
        for level in unnamed:
            assigned.setdefault(level, []).append(sentence)
    for level, sentences in closing.items():
        assigned.setdefault(level, []).extend(sentences)
    return {lv: assigned[lv] for lv in sort_levels(assigned)}


def closing_sentences(text: str) -> list[str]:
    """The sentences of the closing sections (IMPRESSION ...), list numbers and bullets dropped,
    also of an item that follows another on the same line ("1. ... 2. Mild ... at C6-7.")."""
    out = []
    for paragraph in logical_lines(closing_text(text)):
        for line in paragraph:
            for sentence in split_sentences(line):
                bullet = BULLET_RE.match(fold(sentence))
                sentence = sentence[bullet.end() :] if bullet else sentence
                if sentence.strip():
                    out.append(sentence.strip())
    return out


def _is_heading(sentence: str, region: str) -> bool:
    """The sentence opens with a level heading: levels, then ":" or a dash."""
    folded = fold(sentence)
    spans = level_spans(folded, region)
    if not spans or not _HEADING_LEAD_RE.fullmatch(folded, 0, spans[0][0]):
        return False
    end = spans[0][1]
    for start, stop, _ in spans[1:]:
        if not _HEADING_GAP_RE.fullmatch(folded, end, start):
            break
        end = stop
    return bool(_HEADING_TAIL_RE.match(folded, end))


def _whole_spine(sentence: str) -> bool:
    """A sentence on a whole-spine topic (see ``_WHOLE_SPINE_RE`` and ``_BONE_RE``)."""
    if _WHOLE_SPINE_RE.search(sentence):
        return True
    return bool(_BONE_RE.search(sentence) and _SPINE_WIDE_RE.search(sentence) and not _LEVEL_BONE_RE.search(sentence))


def _elsewhere(sentence: str, region: str, current: tuple[str, ...]) -> bool:
    """The sentence is about another place: an unreadable level ("C5-7"), the conus, or a
    vertebra of the region ("the L3 vertebral body") that is in none of the current levels."""
    if unreadable_levels(sentence) or _CONUS_RE.search(sentence):
        return True
    mentioned = {f"{m.group(1).upper()}{int(m.group(2))}" for m in _VERTEBRA_RE[region].finditer(fold(sentence))}
    here = {v for level in current for v in level.split("-")}
    return bool(mentioned - here)


def segment(text: str, region: str, impression: bool = False) -> list[tuple[str, str]]:
    """``[(level, snippet), ...]`` in canonical level order, for levels with any sentence;
    ``impression`` adds the closing sections' sentences that name a level (rule 8)."""
    return [(lv, " ".join(s)) for lv, s in segment_sentences(text, region, impression).items()]


def _norm(sentence: str) -> str:
    bullet = BULLET_RE.match(fold(sentence))
    return " ".join(sentence[bullet.end() if bullet else 0 :].split())


def score_segmentation(
    cases: Iterable[tuple[Mapping[str, Sequence[str]], Mapping[str, Sequence[str]]]],
) -> dict[str, float]:
    """Agreement of predicted and true level -> sentences maps, summed over reports.

    ``cases`` yields (predicted, truth) pairs. Returns precision, recall and F1 of
    (level, sentence) assignments, ``level_accuracy``: the fraction of levels (in either
    map) whose sentence list is exactly right, and ``levels``: how many levels that was.
    """
    tp = fp = fn = exact = total = 0
    for predicted, truth in cases:
        for level in set(predicted) | set(truth):
            p = [_norm(s) for s in predicted.get(level, ())]
            t = [_norm(s) for s in truth.get(level, ())]
            hits = sum(min(p.count(s), t.count(s)) for s in set(p))
            tp, fp, fn = tp + hits, fp + len(p) - hits, fn + len(t) - hits
            exact += p == t
            total += 1
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "level_accuracy": exact / total if total else 1.0,
        "levels": float(total),
    }
