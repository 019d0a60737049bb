"""Render a leaderboard as two static pages: ``index.html`` (one file, works offline) and ``leaderboard.md``.

``render(records, out)`` writes into the folder ``out``:

- ``index.html``: one self-contained HTML file: embedded CSS, the figures inlined as matplotlib
  SVG, no JavaScript, no request to anything (a Content-Security-Policy forbids it);
- ``leaderboard.md``: the same sections and tables in Markdown, the figures as ``figures/*.svg``;
- ``.harness-render``: a marker saying the folder is a render, so a later render may replace it.

The folder is replaced whole: the pages are written to a temporary folder beside ``out`` and
swapped in with two renames, so a failure midway leaves the previous render (or nothing), never
a half page. A folder that is not empty and holds no marker is refused.

matplotlib is an optional extra (``pip install 'harness[render]'``) imported only here, when
rendering. Output is deterministic: the same records and ``generated`` time give the same bytes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.shared import chmod_as_umask
from harness.errors import LeaderboardError
from harness.leaderboard.page import (
    Definitions,
    Figure,
    Paragraph,
    Section,
    date,
    glance_table,
    leaderboard_tables,
    newest_first,
    num,
    predictor_table,
)
from harness.leaderboard.records import RunRecord

if TYPE_CHECKING:
    from types import ModuleType

MARKER = ".harness-render"
MARKER_TEXT = "harness.leaderboard.render 1: this folder is a rendered leaderboard; a new render replaces it whole\n"
SWAP_TRIES = 20  # renders of one folder landing in between ours before we give up
MAX_DETAILED_RUNS = 5  # runs drawn in detail, newest first; older ones are in the tables and their files
QUESTION = "Should these tasks share one model? Does the predictor know in advance?"


def render(
    records: Sequence[RunRecord], out: Path, *, generated: datetime | None = None, max_runs: int = MAX_DETAILED_RUNS
) -> dict[str, Path]:
    """Write ``index.html``, ``leaderboard.md`` and ``figures/*.svg`` into ``out``; return them by relative path.

    ``generated`` is the time stated in the header: default ``$SOURCE_DATE_EPOCH`` when set (for
    reproducible renders), else now. The returned mapping has one ``figures/<id>.svg`` entry per
    figure in the pages. Raises ``LeaderboardError`` when matplotlib is missing, when ``out`` is
    a file or a non-empty folder that is not a previous render, or when two records share a run id.
    """
    figures = _load_figures()
    out = Path(out)
    _check_target(out)
    ids = [r.run_id for r in records]
    if len(set(ids)) != len(ids):
        raise LeaderboardError(f"two records have the same run id: {sorted({i for i in ids if ids.count(i) > 1})}")
    sections = build_sections(list(records), figures, _generated(generated), max_runs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.render-"))
    except OSError as exc:
        raise LeaderboardError(f"{out}: cannot create a folder beside it: {exc.strerror or exc}") from None
    try:
        written = _write(tmp, sections)
        chmod_as_umask(tmp, 0o777)  # mkdtemp makes it private
        _swap(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / name for name in written}


def _load_figures() -> ModuleType:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LeaderboardError("rendering the leaderboard needs matplotlib: pip install 'harness[render]'") from None
    from harness.leaderboard import figures

    return figures


def _generated(generated: datetime | None) -> datetime:
    if generated is not None:
        return generated.astimezone(UTC)
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC)


def _check_target(out: Path) -> None:
    if out.is_symlink():
        raise LeaderboardError(f"{out} is a symbolic link; render into the folder it points to ({out.resolve()})")
    if out.exists() and not out.is_dir():
        raise LeaderboardError(f"{out} is a file; render the leaderboard into a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_render(out):
        raise LeaderboardError(
            f"{out} is a non-empty folder that is not a leaderboard render (no {MARKER} file); "
            "render into a new or empty folder"
        )


def _is_render(folder: Path) -> bool:
    """The folder holds a previous render: its marker file, with the marker's text."""
    try:
        return (folder / MARKER).read_text(encoding="utf-8") == MARKER_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _swap(tmp: Path, out: Path) -> None:
    """Put ``tmp`` at ``out``; a previous render at ``out`` is moved aside first and removed after.

    Another render into ``out`` at the same time may put its folder there between the two
    renames: then that one is moved aside too and the rename tried again. Every render is whole;
    the last one to land stays, and no moved-aside folder is left behind.
    """
    aside: list[Path] = []
    for _ in range(SWAP_TRIES):
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
            os.rmdir(old)
            try:
                os.rename(out, old)
                aside.append(old)
            except FileNotFoundError:
                pass  # another render moved it aside first
        try:
            os.rename(tmp, out)
            break
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                continue  # another render landed in between: move it aside too
            if aside and not out.exists():
                with contextlib.suppress(OSError):
                    os.rename(aside.pop(), out)  # the previous render back in place
            raise LeaderboardError(f"{out}: cannot move the new render into place: {exc.strerror or exc}") from None
    else:
        raise LeaderboardError(f"{out}: other renders replaced it {SWAP_TRIES} times meanwhile; render again")
    for old in aside:
        shutil.rmtree(old, ignore_errors=True)


def _write(folder: Path, sections: list[Section]) -> list[str]:
    from harness.leaderboard.writers import to_html, to_markdown

    figures = [b for s in sections for b in s.blocks if isinstance(b, Figure)]
    (folder / "figures").mkdir()
    names = []
    for fig in figures:
        name = f"figures/{fig.id}.svg"
        (folder / name).write_text('<?xml version="1.0" encoding="utf-8"?>\n' + fig.svg, encoding="utf-8")
        names.append(name)
    (folder / "index.html").write_text(to_html(sections), encoding="utf-8")
    (folder / "leaderboard.md").write_text(to_markdown(sections), encoding="utf-8")
    (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    return ["index.html", "leaderboard.md", *names]


# ---------------------------------------------------------------- the sections


def build_sections(
    records: list[RunRecord], figures: ModuleType, generated: datetime, max_runs: int = MAX_DETAILED_RUNS
) -> list[Section]:
    """The page, top to bottom: header, how to read it, runs at a glance, leaderboard, predictors, runs."""
    versions = sorted({r.provenance.harness_version for r in records})
    head = Section("top", "Multi-task leaderboard", level=1)
    head.blocks.append(Paragraph(f"The question this page answers: {QUESTION}"))
    head.blocks.append(
        Paragraph(
            f"{len(records)} run{'s' if len(records) != 1 else ''} · generated {date(generated)} · "
            f"harness {', '.join(versions) if versions else 'n/a'}",
            note=True,
        )
    )
    sections = [head, _how_to_read()]
    if not records:
        sections.append(Section("empty", "No runs yet", blocks=[Paragraph("The leaderboard holds no run record.")]))
        return sections
    sections.append(_glance(records))
    sections.append(_leaderboard(records))
    sections.append(_predictors(records))
    sections.extend(_runs(records, figures, max_runs))
    return sections


def _how_to_read() -> Section:
    return Section(
        "how-to-read",
        "How to read this page",
        blocks=[
            Paragraph(
                "Each run trains the same tasks two ways: every task alone (single-task learning, STL) and groups "
                "of tasks in one shared model (multi-task learning, MTL), over several random seeds. The gap says "
                "whether sharing helped each task. Each run also computes cheap predictors of those gaps before or "
                "during training, and scores them against the measured gaps: a good predictor would let you decide "
                "which tasks to share without training every combination."
            ),
            Definitions(
                [
                    ("STL / MTL", "the task trained alone / in one model with the other tasks of its group."),
                    ("mean [95% CI]", "mean over seeds and the Student-t 95% interval of that mean."),
                    (
                        "gap",
                        "MTL − STL on the task's primary metric, paired by seed and sign-corrected: positive means "
                        "sharing helped, whatever the metric's direction. An interval that contains 0 is undecided.",
                    ),
                    (
                        "ρ (rho)",
                        "Spearman rank correlation between a predictor's values and the measured gaps: 1 = it orders "
                        "the pairs exactly as training did, 0 = no better than chance; higher is better.",
                    ),
                    (
                        "noise ceiling",
                        "how well the seeds agree with each other on the pair gaps (split-half ρ): no predictor can "
                        "be expected to beat it; at or below 0 the gaps are mostly seed noise.",
                    ),
                    ("regret", "how much mean gap a grouper's partition gives up against the best measured one."),
                    ("n/a / —", "n/a: not measured or undefined (never 0); —: does not apply to the row."),
                ]
            ),
        ],
    )


def _glance(records: list[RunRecord]) -> Section:
    return Section(
        "glance",
        "Runs at a glance",
        blocks=[
            Paragraph(
                "One line per run. 'helped / hurt / unclear' counts the tasks whose gap in the all-task model has a "
                "95% interval above 0 / below 0 / containing 0; n/a: tasks without a measured gap. 'Best predictor' "
                "is the one whose ρ against the pair gaps is highest; compare it with the noise ceiling. "
                "'Lowest-regret grouper' found the partition with the best measured mean gap (regret 0 is best)."
            ),
            glance_table(records),
        ],
    )


def _leaderboard(records: list[RunRecord]) -> Section:
    section = Section(
        "leaderboard",
        "Leaderboard: results by task",
        blocks=[
            Paragraph(
                "Results are compared only when they measure the same thing: the same task name, task version, data "
                "(fingerprint of the splits used), reported split and metric. Each table is one such key; its rows "
                "(one per run and trained group) are ranked best first by the metric's recorded direction. The "
                "gap column is MTL − STL within the run (positive = sharing helped). Cost columns are the group's "
                "jobs: training seconds, training examples per second, peak memory in MB, processes and device. "
                "When a task appears in several tables, a note says what differs."
            )
        ],
    )
    section.blocks.extend(leaderboard_tables(records))
    return section


def _predictors(records: list[RunRecord]) -> Section:
    section = Section(
        "predictors",
        "Predictors: do they know in advance?",
        blocks=[
            Paragraph(
                "Per run, each predictor's agreement with the measured gaps, best first. 'ρ vs pair gaps' ranks "
                "its value P[i][j] against the gap of task i trained with task j over all ordered pairs (bootstrap "
                "95% interval; p from a task permutation test, small = unlikely by chance). 'ρ vs group gaps' does "
                "the same for every trained group. 'Share of noise ceiling' is ρ relative to the best reachable "
                "(1 = as good as the seeds allow). 'Neg.-transfer F1' scores the predictor as a detector of pairs "
                "whose gap is significantly negative (1 = perfect). 'Cost share' is its seconds as a share of the "
                "full pairwise training sweep it would replace (lower is cheaper). Higher ρ, share and F1 are better."
            )
        ],
    )
    for record in newest_first(records):
        section.blocks.append(predictor_table(record))
    return section


def _runs(records: list[RunRecord], figures: ModuleType, max_runs: int) -> list[Section]:
    ordered = newest_first(records)
    intro = Section(
        "runs",
        "Runs in detail",
        blocks=[
            Paragraph(
                "Figures of each run, newest first: STL against MTL per task; the gap of every task in every trained "
                "group; the similarity (CKA) and gradient-alignment matrices the predictors are built from; TAG "
                "affinity; each predictor against the measured pair gaps; and the groupers' regret against their "
                "cost. Every figure has a caption saying what is better."
            )
        ],
    )
    if len(ordered) > max_runs:
        older = ", ".join(r.run_id for r in ordered[max_runs:])
        intro.blocks.append(
            Paragraph(
                f"Only the {max_runs} newest runs are drawn; {len(ordered) - max_runs} older runs ({older}) are in "
                "the tables above and in their record files (runs/<run id>.json).",
                note=True,
            )
        )
    return [intro, *(_run_section(r, figures) for r in ordered[:max_runs])]


def _run_section(record: RunRecord, figures: ModuleType) -> Section:
    prov = record.provenance
    key = f"run-{record.run_id}"
    section = Section(key, f"Run {record.run_id}", level=3)
    c = record.cost
    section.blocks.append(
        Paragraph(
            f"{date(prov.finished)} · model {record.model.name} · profile {prov.profile} · "
            f"{len(record.tasks)} tasks ({', '.join(t.name for t in record.tasks)}) · seeds "
            f"{', '.join(map(str, record.seeds))} · {c.jobs} jobs, {num(c.seconds, 0)} s in all · "
            f"harness {prov.harness_version} at {prov.git_revision or 'n/a'}",
            note=True,
        )
    )
    made: list[Figure | str] = [
        figures.stl_vs_mtl(record, f"{key}-stl-mtl"),
        figures.gaps_by_group(record, f"{key}-gaps"),
        *(figures.per_layer_figures(record, key, True) or ["no CKA predictor with per-layer matrices in this run"]),
        *figures.per_layer_figures(record, key, False),
        *figures.overall_gradient_figures(record, key),
        figures.tag_figure(record, key),
        figures.predictor_scatter(record, f"{key}-scatter"),
        figures.grouper_figure(record, f"{key}-groupers"),
    ]
    for item in made:
        section.blocks.append(item if isinstance(item, Figure) else Paragraph(f"Not drawn: {item}.", note=True))
    return section
