"""Vertebral levels: the vocabulary, spelling normalisation and level mentions in text.

A *level* is the disc space between two adjacent vertebrae, written canonically as
``"C5-C6"``, ``"C7-T1"``, ``"L5-S1"``. Reports spell levels many ways; every function here
maps them to the canonical form:

    C5-C6, C5-6, C5/C6, C5/6, C5–C6 (en dash), C5—C6, C5 C6, c5-6, C5 on C6,
    L5-S1, L5/S1, "at the 5-6 level" (needs the region), ranges "C3-C4 through C5-C6".

Single vertebrae ("the C6 vertebral body") are not levels. MR sequence names that look like
thoracic levels ("T1/T2 hyperintense", "T2-weighted") are not levels either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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
# Two vertebrae joined by a dash or slash ("C5-C6", "c5/6", "L5–S1"), or by a space or "on"
# when the second letter is written ("C5 C6", "L4 on L5"; "C5 6 mm" is not a level).
_LEVEL_RE = re.compile(
    r"(?<![A-Za-z0-9])([CTLS])\s?(\d{1,2})"
    r"(?:\s*[-–—/]\s*([CTLS])?\s?(\d{1,2})|(?:\s+on\s+|\s+)([CTLS])\s?(\d{1,2}))"
    r"(?!\d)",
    re.IGNORECASE,
)
# "at the 5-6 level", "the 4/5 disc space": only with a known region.
_BARE_RE = re.compile(
    r"(?<![A-Za-z0-9/-])(\d)\s*[-/–]\s*(\d)\s+(?:disc\s+)?(?:level|interspace|disc\s+space)", re.IGNORECASE
)
_RANGE_GAP_RE = re.compile(r"^\s*(?:through|thru|to)\s*$", re.IGNORECASE)


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
    found = [(m.start(), m.end(), lv) for m, lv in _matches(cleaned, region)]
    if len(found) != 1 or found[0][0] != 0 or found[0][1] != len(cleaned):
        return None
    level = found[0][2]
    if region is not None and level not in REGION_LEVELS[region]:
        return None
    return level


def _matches(text: str, region: str | None) -> list[tuple[re.Match[str], str]]:
    out = []
    for m in _LEVEL_RE.finditer(text):
        first = f"{m.group(1)}{int(m.group(2))}"
        if m.group(4) is not None:
            level = canonical(first, m.group(3), m.group(4))
        else:
            level = canonical(first, m.group(5), m.group(6))
        if level is not None and not (level[0] == "T" and _SEQUENCE_AFTER.match(text, m.end())):
            out.append((m, level))
    if region is not None:
        letter = _REGION_LETTER[region]
        for m in _BARE_RE.finditer(text):
            level = canonical(f"{letter}{m.group(1)}", None, m.group(2))
            if level is not None:
                out.append((m, level))
    return sorted(out, key=lambda x: x[0].start())


def level_spans(text: str, region: str | None = None) -> list[tuple[int, int, str]]:
    """``(start, end, level)`` of every single level mention (ranges not expanded)."""
    return [(m.start(), m.end(), level) for m, level in _matches(text, region)]


def find_levels(text: str, region: str | None = None) -> list[str]:
    """Every level a sentence names, in order of first mention, ranges expanded.

    Thoracic and other-region levels are returned too (the caller decides what to keep);
    ``"C3-C4 through C5-C6"`` gives C3-C4, C4-C5, C5-C6.
    """
    matches = _matches(text, region)
    levels: list[str] = []
    for i, (m, level) in enumerate(matches):
        if i > 0 and _RANGE_GAP_RE.match(text[matches[i - 1][0].end() : m.start()]):
            levels.extend(_between(matches[i - 1][1], level))
        levels.append(level)
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
