"""Report sections: which part of a report holds the findings.

A *header* is a known section name followed by a colon, or alone on its line: at the start
of a line ("Findings:", "FINDINGS", "Clinical history:", any case), or mid-line after the end
of a sentence when it starts with a capital ("... normal. Impression: ..."). Sections are of
three kinds:

* **findings** (FINDINGS) and **closing** (IMPRESSION, CONCLUSION, SUMMARY, OPINION) sections
  run to the next header of either kind;
* **short** sections (HISTORY, INDICATION, TECHNIQUE, COMPARISON, EXAM, PROCEDURE,
  RECOMMENDATION, ADDENDUM, ...) are a
  header only for their own line's text (hard-wrapped continuation lines included) up to the
  next header or a sentence that opens with a vertebral level ("Comparison: None. L4-5: ...");
  a header alone on its line takes the lines below it up to a blank line, the next header, or
  a line that opens with a vertebral level. After a short section the text belongs
  to the findings or closing section it interrupted, if any.

The findings are the bodies of the FINDINGS sections; in a report without a FINDINGS header,
everything that is in no section. Line endings are normalised first (CRLF, CR, and the other
Unicode line separators all end a line), and byte-order marks (U+FEFF) are dropped.
"""

from __future__ import annotations

import re

from harness_spine.levels import fold, level_spans

_SECTION_NAMES = (
    r"clinical history|history|clinical (?:information|indication|data)|indications?|reason for (?:exam|study)"
    r"|technique|procedure|comparisons?|exam(?:ination)?|findings|impressions?|conclusions?|summary|opinion"
    r"|recommendations?|addend(?:um|a)"
)
_HEADER_RE = re.compile(
    rf"(?im)^[ \t]*(?P<a>{_SECTION_NAMES})[ \t]*(?::|$)|(?<=[.!?][ \t])(?=(?-i:[A-Z]))(?P<b>{_SECTION_NAMES}):"
)
_CLOSING_RE = re.compile(r"impression|conclusion|summary|opinion")
_NEWLINE_RE = re.compile(r"\r\n?|[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z ,/&()'-]{0,40}:")  # "Alignment:", "Disc levels:"
# Matched on folded text, so any Unicode dash is a "-" bullet too.
BULLET_RE = re.compile(r"^\s*(?:[-*\u2022\u00b7\u25aa\u25e6\u2023\u25cb\u25cf\u25a0]|\d{1,2}[.)])\s+")
_SENTENCE_BREAK_RE = re.compile(r"[.!?;][ \t]+")
SENTENCE_ENDS = (".", ":", "!", "?", ";")  # a line ending so is not hard-wrapped


def normalize_newlines(text: str) -> str:
    """Every line break as ``"\\n"``, and no byte-order mark (U+FEFF: text read from a file
    with one, as "utf-8" rather than "utf-8-sig")."""
    return _NEWLINE_RE.sub("\n", text).replace("\ufeff", "")


def findings_text(text: str) -> str:
    """The part of a report that holds findings (see the module docstring); the pieces are
    joined by blank lines."""
    pieces, headers = _pieces(text)
    found = pieces["findings"] if any(kind == "findings" for _, _, kind in headers) else pieces[None]
    return "\n\n".join(found)


def closing_text(text: str) -> str:
    """The bodies of the closing sections (IMPRESSION, CONCLUSION, SUMMARY, OPINION), joined by
    blank lines; "" when the report has none."""
    return "\n\n".join(_pieces(text)[0]["closing"])


def _pieces(text: str) -> tuple[dict[str | None, list[str]], list[tuple[int, int, str]]]:
    """The report's text by owning section ("findings", "closing", None: in no section), and its headers."""
    text = normalize_newlines(text)
    headers = [(m.start(), m.end(), _kind(m.group("a") or m.group("b"))) for m in _HEADER_RE.finditer(text)]
    pieces: dict[str | None, list[str]] = {None: [], "findings": [], "closing": []}
    owner: str | None = None  # the findings or closing section the text is in, None outside any
    position = 0
    for k, (start, end, kind) in enumerate(headers):
        pieces[owner].append(text[position:start])
        if kind == "short":
            following = headers[k + 1][0] if k + 1 < len(headers) else len(text)
            position = min(following, _short_end(text, end))
        else:
            owner, position = kind, end
    pieces[owner].append(text[position:])
    return pieces, headers


def _kind(name: str) -> str:
    name = name.lower()
    return "findings" if name == "findings" else "closing" if _CLOSING_RE.match(name) else "short"


def _short_end(text: str, end: int) -> int:
    """Where a short section whose header ends at ``end`` stops (see the module docstring)."""
    stop = _line_end(text, end)
    previous = text[end:stop].strip()
    alone = not previous
    while stop < len(text):
        following = _line_end(text, stop + 1)
        line = " ".join(text[stop + 1 : following].split())
        if not line or (level_led(line) if alone else previous.endswith(SENTENCE_ENDS) or starts_item(line, previous)):
            break
        previous, stop = line, following
    for m in _SENTENCE_BREAK_RE.finditer(text, end, stop):
        if level_led(text[m.end() : m.end() + 30]):
            return m.end()  # "Comparison: None. L4-5: Bulge." on one line
    return stop


def _line_end(text: str, position: int) -> int:
    found = text.find("\n", position)
    return len(text) if found < 0 else found


def level_led(line: str) -> bool:
    """Whether a line opens with a vertebral level (after a bullet, "At", "Level")."""
    folded = fold(line)
    bullet = BULLET_RE.match(folded)
    head = folded[bullet.end() if bullet else 0 :][:24]
    return any(start <= 6 for start, _, _ in level_spans(head))


def starts_item(line: str, previous: str) -> bool:
    """Whether a line after one without a full stop opens a new item rather than continuing
    a wrapped sentence: a bullet, a "Label:" line, "C5-6:" / "C5-6 -", or a level-led line
    after another level-led line (a list without full stops)."""
    folded = fold(line)
    if BULLET_RE.match(folded) or LABEL_RE.match(line):
        return True
    spans = level_spans(line[:24])
    if not spans or spans[0][0] > 6:
        return False
    after = folded[spans[0][1] :].lstrip()
    return after[:1] in (":", "-") or any(start <= 6 for start, _, _ in level_spans(previous[:24]))
