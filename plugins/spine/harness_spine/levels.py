"""Vertebral levels: the vocabulary, spelling normalisation and level mentions in text.

A *level* is the disc space between two adjacent vertebrae, written canonically as
``"C5-C6"``, ``"C7-T1"``, ``"L5-S1"``. Reports spell levels many ways; every function here
maps them to the canonical form:

    C5-C6, C5-6, C5/C6, C5/6, C5–C6 (en dash), C5—C6, C5 C6, C5C6, c5-6, C5 on C6,
    L5-S1, L5/S1, "at the 5-6 level" (needs the region), ranges "C3-C4 through C5-C6",
    lists "C4-5, 5-6 and 6-7" (a bare pair after a level takes that level's letter) and
    "the 3-4 and 4-5 levels" (needs the region).

Every Unicode hyphen, dash and minus sign (U+2010-U+2015, U+2212, U+FE58, U+FE63, U+FF0D)
reads as "-", and the fraction, division and full-width slashes as "/" (``fold``). Single
vertebrae ("the C6 vertebral body") are not levels. MR sequence names that look like
thoracic levels ("T1/T2 hyperintense", "T2-weighted") are not levels either. Two vertebrae
joined by a dash or slash that are not adjacent ("C5-7", "L5-L6", "S1-2") are *unreadable*
levels (``unreadable_levels``): not levels, but not prose either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

REGIONS = ("cervical", "lumbar")

#: Every vertebra from C1 to S1, in anatomical order.
VERTEBRAE: tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
    + ("S1",)
)
_NEXT = dict(zip(VERTEBRAE, VERTEBRAE[1:], strict=False))

#: Every level the normaliser recognises (C1-C2 ... L5-S1), thoracic ones included so that a
#: mention of T1-T2 in a cervical report is seen as "another level", not as the previous one.
ALL_LEVELS: tuple[str, ...] = tuple(f"{a}-{b}" for a, b in _NEXT.items())

#: The levels annotated per region, in canonical (cranio-caudal) order.
REGION_LEVELS: dict[str, tuple[str, ...]] = {
    "cervical": ("C2-C3", "C3-C4", "C4-C5", "C5-C6", "C6-C7", "C7-T1"),
    "lumbar": ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"),
}
_REGION_LETTER = {"cervical": "C", "lumbar": "L"}

# After "T1/T2" or "T2-T3": words that make it an MR sequence, not a thoracic level.
_SEQUENCE_AFTER = re.compile(
    r"-?\s*(?:weighted|hyper|hypo|iso|signal|sequence|image|bright|dark|stir|flair)", re.IGNORECASE
)
_FOLD = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-")
    | dict.fromkeys("\u2044\u2215\uff0f", "/")
)
# Two vertebrae joined by a dash or slash ("C5-C6", "c5/6", "L5-S1"), or by a space, nothing
# or "on" when the second letter is written ("C5 C6", "L4L5", "L4 on L5"; "C5 6 mm" is not a
# level). Matched on folded text.
_LEVEL_RE = re.compile(
    r"(?<![A-Za-z0-9])([CTLS])\s?(\d{1,2})"
    r"(?:\s*[-/]\s*([CTLS])?\s?(\d{1,2})|(?:\s+on\s+|\s*)([CTLS])\s?(\d{1,2}))"
    r"(?!\d)",
    re.IGNORECASE,
)
# Any two vertebrae joined by a dash or slash, readable or not.
_PAIR_LIKE_RE = re.compile(r"(?<![A-Za-z0-9])([CTLS])\s?(\d{1,2})\s*[-/]\s*([CTLS])?\s?(\d{1,2})(?!\d)", re.IGNORECASE)
_SEP = r"\s*(?:,\s*(?:and\s+|or\s+|&\s*)?|(?:and|or|through|thru|to)\s+|&\s*)"
_BARE_PAIR = r"(\d{1,2})\s*[-/]\s*([CTLS])?\s?(\d{1,2})(?!\d|\.\d|[-/]\d)"  # not "1/2/2020", "2-3.5"
_UNIT = r"(?!\s*(?:mm|cm|millimet|centimet|%|x\b|months?|years?|weeks?|days?|hours?))"
# The next item of a list after a level: ", 5-6", " and 6-7", " through 5-6", "& 5-S1".
_NEXT_ITEM_RE = re.compile(_SEP + _BARE_PAIR + _UNIT, re.IGNORECASE)
# "at the 5-6 level", "the 4/5 disc space", "the 3-4 and 4-5 levels": only with a known region.
_BARE_RUN_RE = re.compile(
    rf"(?<![A-Za-z0-9/-]){_BARE_PAIR}(?:{_SEP}{_BARE_PAIR})*\s+(?:disc\s+)?(?:levels?|interspaces?|disc\s+spaces?)",
    re.IGNORECASE,
)
_BARE_PAIR_RE = re.compile(_BARE_PAIR, re.IGNORECASE)
_RANGE_GAP_RE = re.compile(r"^\s*(?:through|thru|to)\s*$", re.IGNORECASE)


class Mention(NamedTuple):
    """One level named in a text: where (offsets into the text) and which level."""

    start: int
    end: int
    level: str


def fold(text: str) -> str:
    """``text`` with every Unicode hyphen, dash and minus as "-" and slash look-alikes as "/".
    One character for one, so offsets into the result are offsets into ``text``."""
    return text.translate(_FOLD)


def canonical(first: str, second_letter: str | None, second_number: str) -> str | None:
    """``("C5", None, "6") -> "C5-C6"``; None unless the two vertebrae are adjacent."""
    first = first.upper()
    nxt = _NEXT.get(first)
    if nxt is None:
        return None
    letter = (second_letter or nxt[0]).upper()
    if f"{letter}{int(second_number)}" != nxt:
        return None
    return f"{first}-{nxt}"


def normalize_level(text: str, region: str | None = None) -> str | None:
    """The canonical level for a spelling such as ``"c5/6"`` or ``"L5–S1"``, or None.

    The whole string must be one level (surrounding spaces and a trailing colon aside).
    With ``region``, only that region's levels are accepted.
    """
    cleaned = text.strip().rstrip(":").strip()
    found = _mentions(cleaned, region)
    if len(found) != 1 or found[0].start != 0 or found[0].end != len(cleaned):
        return None
    level = found[0].level
    if region is not None and level not in REGION_LEVELS[region]:
        return None
    return level


def _mentions(text: str, region: str | None) -> list[Mention]:
    """Every level mention, in text order: lettered levels, the bare list items that follow
    them, and (with a region) bare pairs before "level(s)"."""
    folded = fold(text)
    out: dict[int, Mention] = {}
    for m in _LEVEL_RE.finditer(folded):
        first = f"{m.group(1)}{int(m.group(2))}"
        if m.group(4) is not None:
            level = canonical(first, m.group(3), m.group(4))
        else:
            level = canonical(first, m.group(5), m.group(6))
        if level is not None and not (level[0] == "T" and _SEQUENCE_AFTER.match(folded, m.end())):
            out[m.start()] = Mention(m.start(), m.end(), level)
            out.update((x.start, x) for x in _list_items(folded, out[m.start()]))
    if region is not None:
        letter = _REGION_LETTER[region]
        for run in _BARE_RUN_RE.finditer(folded):
            for m in _BARE_PAIR_RE.finditer(folded, run.start(), run.end()):
                level = canonical(f"{letter}{m.group(1)}", m.group(2), m.group(3))
                if level is not None and m.start() not in out:
                    out[m.start()] = Mention(m.start(), m.end(), level)
    return [out[k] for k in sorted(out)]


def _list_items(folded: str, head: Mention) -> list[Mention]:
    """The bare pairs listed after a level ("C4-5, 5-6 and 6-7"): each takes the letter of
    the lower vertebra of the item before it."""
    items, previous = [], head
    while m := _NEXT_ITEM_RE.match(folded, previous.end):
        letter = previous.level.split("-")[1][0]
        level = canonical(f"{letter}{m.group(1)}", m.group(2), m.group(3))
        if level is None:
            break
        previous = Mention(m.start(1), m.end(3), level)
        items.append(previous)
    return items


def level_spans(text: str, region: str | None = None) -> list[tuple[int, int, str]]:
    """``(start, end, level)`` of every single level mention (ranges not expanded)."""
    return list(_mentions(text, region))


def unreadable_levels(text: str) -> list[str]:
    """The spellings of two vertebrae joined by a dash or slash that are no level: not
    adjacent ("C5-7", "C6-5"), or past the spine's end ("L5-L6", "S1-2"). Sequence names
    ("T1/T2 hyperintense") are not reported."""
    folded = fold(text)
    out = []
    for m in _PAIR_LIKE_RE.finditer(folded):
        first, letter, number = f"{m.group(1)}{int(m.group(2))}", m.group(3), m.group(4)
        if canonical(first, letter, number) is None and not (
            first[0].upper() == "T" and _SEQUENCE_AFTER.match(folded, m.end())
        ):
            out.append(text[m.start() : m.end()])
    return out


def find_levels(text: str, region: str | None = None) -> list[str]:
    """Every level a sentence names, in order of first mention, ranges expanded.

    Thoracic and other-region levels are returned too (the caller decides what to keep);
    ``"C3-C4 through C5-C6"`` gives C3-C4, C4-C5, C5-C6.
    """
    mentions = _mentions(text, region)
    folded = fold(text)
    levels: list[str] = []
    for i, m in enumerate(mentions):
        if i > 0 and _RANGE_GAP_RE.match(folded[mentions[i - 1].end : m.start]):
            levels.extend(_between(mentions[i - 1].level, m.level))
        levels.append(m.level)
    return list(dict.fromkeys(levels))


def _between(start: str, end: str) -> list[str]:
    """Levels strictly between two levels (either order), e.g. C3-C4..C6-C7 -> C4-C5, C5-C6."""
    a, b = ALL_LEVELS.index(start), ALL_LEVELS.index(end)
    lo, hi = min(a, b), max(a, b)
    return list(ALL_LEVELS[lo + 1 : hi])


def sort_levels(levels: Iterable[str]) -> list[str]:
    """Canonical cranio-caudal order."""
    return sorted(set(levels), key=ALL_LEVELS.index)


def spell(level: str, style: str) -> str:
    """Write a canonical level in one of the spelling ``style``s the generator uses.

    Styles: ``full`` C5-C6, ``short`` C5-6, ``slash`` C5/C6, ``slash_short`` C5/6,
    ``endash`` C5–C6, ``endash_short`` C5–6, ``space`` C5 C6. Levels that cross a region
    boundary (C7-T1, L5-S1) keep the second letter in the short styles, as radiologists do.
    """
    first, second = level.split("-")
    keep_letter = first[0] != second[0]
    tail = second if keep_letter else second[1:]
    forms = {
        "full": f"{first}-{second}",
        "short": f"{first}-{tail}",
        "slash": f"{first}/{second}",
        "slash_short": f"{first}/{tail}",
        "endash": f"{first}–{second}",
        "endash_short": f"{first}–{tail}",
        "space": f"{first} {second}",
    }
    return forms[style]


SPELLING_STYLES = ("full", "short", "slash", "slash_short", "endash", "endash_short", "space")
