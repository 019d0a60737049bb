"""The page's two forms: one self-contained HTML file, and Markdown with the figures as files.

Every string that comes from a record (task names, notes, descriptions: third-party plugins
write them) is plain text in the page model and escaped here: ``html.escape`` for HTML,
backslash escapes and entities for Markdown. Only the figures' SVG, made by matplotlib with
record strings escaped by it, goes in as markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from harness.leaderboard.page import Definitions, Figure, Paragraph, Section, Table

# No request may leave the page: no scripts, no fetches, no external images, fonts or styles.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

CSS = """
:root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --band: #f6f8fa; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
main { max-width: 1480px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 17px; margin: 28px 0 6px; }
h4 { font-size: 15px; margin: 22px 0 4px; }
p { max-width: 72em; margin: 6px 0 10px; }
p.note, .table-note { color: var(--muted); font-size: 13.5px; }
.question { font-size: 18px; font-weight: 600; }
nav { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; margin: 14px 0; }
nav ul { margin: 4px 0; padding-left: 20px; columns: 2; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; max-width: 72em; }
dt { font-weight: 600; } dd { margin: 0; }
.scroll { overflow-x: auto; margin: 6px 0 18px; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: var(--band); white-space: nowrap; }
td.num { text-align: right; white-space: nowrap; }
td.one { white-space: nowrap; }
td.wrap { min-width: 11em; max-width: 26em; }
.table-note { border-left: 3px solid #d4a72c; padding-left: 8px; }
ul.footnotes { font-size: 13px; color: var(--muted); margin: -8px 0 18px; }
tbody tr:nth-child(even) { background: #fbfcfd; }
figure { margin: 18px 0 26px; padding: 10px 12px; border: 1px solid var(--line); border-radius: 6px; }
figure svg { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { font-size: 13.5px; color: var(--muted); margin-top: 8px; max-width: 72em; }
figcaption b { color: var(--ink); }
""".strip()


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def to_html(sections: list[Section]) -> str:
    title = sections[0].title if sections else "Leaderboard"
    body = "\n".join(_html_section(s, n == 0, sections) for n, s in enumerate(sections))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _html_section(section: Section, first: bool, sections: list[Section]) -> str:
    h = f"h{section.level}"
    parts = [f'<section id="{esc(section.id)}">', f"<{h}>{esc(section.title)}</{h}>"]
    for n, block in enumerate(section.blocks):
        if isinstance(block, Paragraph):
            cls = "note" if block.note else ("question" if first and n == 0 else "")
            parts.append(f'<p class="{cls}">{esc(block.text)}</p>' if cls else f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Definitions):
            items = "".join(f"<dt>{esc(t)}</dt><dd>{esc(d)}</dd>" for t, d in block.items)
            parts.append(f"<dl>{items}</dl>")
        elif isinstance(block, Table):
            parts.append(_html_table(block, section.level + 1))
        else:
            parts.append(_html_figure(block))
    if first:
        parts.append(_html_nav(sections[1:]))
    parts.append("</section>")
    return "\n".join(parts)


def _html_nav(sections: list[Section]) -> str:
    items = "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in sections)
    return f"<nav><b>Contents</b><ul>{items}</ul></nav>"


def _html_table(table: Table, level: int) -> str:
    h = f"h{min(level, 6)}"
    head = "".join(f"<th>{esc(c)}</th>" for c in table.headers)
    rows = []
    for row in table.rows:
        cells = "".join(f'<td class="{_CELL[kind]}">{esc(c)}</td>' for c, kind in zip(row, table.columns, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    notes = "".join(f'<p class="table-note">{esc(n)}</p>' for n in table.notes)
    foot = "".join(f"<li>{esc(n)}</li>" for n in table.footnotes)
    anchor = f' id="{esc(table.id)}"' if table.id else ""
    return (
        f"<{h}{anchor}>{esc(table.title)}</{h}>{notes}\n"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
        + (f'<ul class="footnotes">{foot}</ul>' if foot else "")
    )


_CELL = {"r": "num", "l": "one", "w": "wrap"}


def _html_figure(fig: Figure) -> str:
    return (
        f'<figure id="{esc(fig.id)}">\n{fig.svg}'
        f"<figcaption><b>{esc(fig.title)}.</b> {esc(fig.caption)}</figcaption>\n</figure>"
    )


# ---------------------------------------------------------------- Markdown


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~])")


def md(text: str) -> str:
    """Plain text safe in Markdown: HTML-escaped (raw HTML is passed through by most renderers), markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False)).replace("\n", " ")


def to_markdown(sections: list[Section]) -> str:
    return "\n".join(_md_lines(sections)).rstrip() + "\n"


def _md_lines(sections: list[Section]) -> Iterator[str]:
    for n, section in enumerate(sections):
        yield f"{'#' * section.level} {md(section.title)}"
        yield ""
        for block in section.blocks:
            yield from _md_block(block, section.level)
        if n == 0:
            yield "Contents:"
            yield ""
            for s in sections[1:]:
                yield f"- [{md(s.title)}](#{s.id})"
            yield ""


def _md_block(block: Paragraph | Definitions | Table | Figure, level: int) -> Iterator[str]:
    if isinstance(block, Paragraph):
        yield f"*{md(block.text)}*" if block.note else md(block.text)
    elif isinstance(block, Definitions):
        yield from (f"- **{md(term)}**: {md(text)}" for term, text in block.items)
    elif isinstance(block, Table):
        yield f"{'#' * min(level + 1, 6)} {md(block.title)}"
        yield ""
        for note in block.notes:
            yield f"*{md(note)}*"
            yield ""
        yield "| " + " | ".join(md(c) for c in block.headers) + " |"
        yield "|" + "|".join("---:" if c == "r" else "---" for c in block.columns) + "|"
        yield from ("| " + " | ".join(md(c) for c in row) + " |" for row in block.rows)
        if block.footnotes:
            yield ""
            yield from (f"- {md(n)}" for n in block.footnotes)
    else:
        yield f"![{md(block.title)}](figures/{block.id}.svg)"
        yield ""
        yield f"*Figure: {md(block.title)}.* {md(block.caption)}"
    yield ""
