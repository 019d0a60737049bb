"""The rendered leaderboard: both pages, every figure, comparability, ranking, n/a, escaping, determinism, folders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.errors import LeaderboardError
from harness.leaderboard import compare, page
from harness.leaderboard.records import RunRecord
from tests import leaderboard_records as lr

pytest.importorskip("matplotlib", reason="the render extra (pip install 'harness[render]') is not installed")

from harness.leaderboard import figures, render  # noqa: E402

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BASE = lr.record()
NEWER = lr.record(
    lr.variant("20261201T000000Z-spine-newer", "2026-12-01T00:00:00Z", **{"cervical.disc": "a1b2c3d4e5f60718"})
)
RUN_FIGURES = [
    "stl-mtl",
    "gaps",
    "layers-cka_debiased",
    "layers-cka_linear",  # cka_linear_min has the same per-layer matrices: drawn once
    "layers-cka_standardized",
    "layers-grad_cosine_init",
    "layers-grad_cosine_train",
    "tag",
    "scatter",
    "groupers",
]


def expected_ids(*records: RunRecord) -> set[str]:
    return {f"run-{r.run_id}-{name}" for r in records for name in RUN_FIGURES}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("render") / "site"
    return out, render.render([BASE, NEWER], out, generated=WHEN)


def test_both_pages_and_every_figure(two_runs: tuple[Path, dict[str, Path]]) -> None:
    out, written = two_runs
    html = (out / "index.html").read_text(encoding="utf-8")
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    figure_files = {k for k in written if k.startswith("figures/")}
    assert {"index.html", "leaderboard.md"} <= set(written) and all(p.is_file() for p in written.values())

    ids = set(re.findall(r'<figure id="([^"]+)"', html))
    assert ids == expected_ids(BASE, NEWER)
    assert html.count("<svg") == len(ids) == len(figure_files) == 20
    assert figure_files == {f"figures/{i}.svg" for i in ids}
    for name in figure_files:  # the Markdown page shows every figure, by a relative link to its file
        assert f"]({name})" in markdown
        assert (out / name).read_text(encoding="utf-8").startswith("<?xml")
    assert html.count("<figcaption>") == 20
    # self-contained and static: no script, no link outside the page (colour bars are data: images)
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="(?!#|data:image/png;base64,)', html)
    assert "Should these tasks share one model? Does the predictor know in advance?" in html
    assert "2 runs · generated 2026-12-01 12:00 UTC · harness 0.1.0" in html


def test_svg_ids_are_unique_in_the_page(two_runs: tuple[Path, dict[str, Path]]) -> None:
    html = (two_runs[0] / "index.html").read_text(encoding="utf-8")
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r"url\(#([^)]+)\)", html)) <= set(ids)


def test_not_comparable_keys_get_separate_tables_with_the_reason(two_runs: tuple[Path, dict[str, Path]]) -> None:
    tables = [t for t in page.leaderboard_tables([BASE, NEWER]) if t.title.startswith("cervical.disc ")]
    assert len(tables) == 2
    assert [{row[1] for row in t.rows} for t in tables] == [{NEWER.run_id}, {BASE.run_id}]  # by fingerprint
    old = BASE.task("cervical.disc").data_fingerprint
    reason = [n for t in tables for n in t.notes]
    assert reason == [f"Not compared with the table above: data fingerprint differs ({old[:8]}… vs a1b2c3d4…)."]
    # the other tasks have one key: both runs ranked in one table
    stenosis = [t for t in page.leaderboard_tables([BASE, NEWER]) if t.title.startswith("cervical.canal_stenosis ")]
    assert len(stenosis) == 1 and {row[1] for row in stenosis[0].rows} == {BASE.run_id, NEWER.run_id}
    html = (two_runs[0] / "index.html").read_text(encoding="utf-8")
    assert reason[0] in html
    assert compare.why_not_compared(
        compare.Key("t", "2", "aa", "dev", "f1", True), compare.Key("t", "1", "aa", "test", "f1", True)
    ) == ("task version differs (2 vs 1); reported split differs (dev vs test)")


def _with_direction(higher_is_better: bool) -> RunRecord:
    data = lr.raw()
    for task in data["tasks"]:
        task["higher_is_better"] = higher_is_better
        task["metrics"] = {m: higher_is_better for m in task["metrics"]}
    for row in data["results"]:
        row["higher_is_better"] = higher_is_better
    return lr.record(data)


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_ranking_follows_the_recorded_direction(higher_is_better: bool) -> None:
    for table in page.leaderboard_tables([_with_direction(higher_is_better)]):
        means = [float(row[7].split()[0]) for row in table.rows]
        assert means == sorted(means, reverse=higher_is_better), table.title
        assert ("higher is better" if higher_is_better else "lower is better") in table.title
        assert [row[0] for row in table.rows] == [str(n + 1) for n in range(len(table.rows))]


def test_missing_values_are_shown_as_na_never_as_zero() -> None:
    data = lr.raw()
    row = next(r for r in data["results"] if r["kind"] == "mtl" and r["task"] == "cervical.disc")
    row.update(values=[None] * len(row["seeds"]), mean=None, std=None, ci95=None, gap=None)
    tag = next(p for p in data["predictors"] if p["name"] == "tag")
    tag["matrix"][0][1] = None
    record = lr.record(data)

    table = next(t for t in page.leaderboard_tables([record]) if t.title.startswith("cervical.disc "))
    last = table.rows[-1]  # no mean: ranked last
    assert last[7] == "n/a" and last[8] == "0 of 3" and last[9] == "n/a"
    assert all(row[12] == "n/a" for row in table.rows)  # peak memory was not recorded
    fig = figures.tag_figure(record, "t")
    assert isinstance(fig, page.Figure)
    assert fig.svg.count(">n/a<") == 1  # the one missing cell, written in the cell (grey)
    ceiling = lr.raw()
    ceiling["noise_ceiling"] = None
    assert "Noise ceiling: n/a" in " ".join(page.predictor_table(lr.record(ceiling)).notes)


def test_strings_from_records_are_escaped(tmp_path: Path) -> None:
    evil = "<script>alert('x$y$')</script>"
    record = lr.record(lr.rename_task(lr.raw(), "cervical.hemangioma", evil))
    out = tmp_path / "site"
    render.render([record], out, generated=WHEN)
    html = (out / "index.html").read_text(encoding="utf-8")
    markdown = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<script" not in markdown.lower()
    assert "&lt;script&gt;alert(&#x27;x$y$&#x27;)&lt;/script&gt;" in html  # tables and text
    svg = (out / f"figures/run-{record.run_id}-stl-mtl.svg").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert('x$y$')&lt;/script&gt;" in svg  # matplotlib drew the name as text, not math


def test_a_rerender_is_byte_identical(tmp_path: Path) -> None:
    out = tmp_path / "site"
    first = render.render([BASE], out, generated=WHEN)
    before = {name: path.read_bytes() for name, path in first.items()}
    second = render.render([BASE], out, generated=WHEN)
    assert {name: path.read_bytes() for name, path in second.items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no temporary folder left beside it
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        [*before, render.MARKER]
    )


def test_refuses_a_folder_that_is_not_a_render(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(LeaderboardError, match="not a leaderboard render"):
        render.render([BASE], out, generated=WHEN, max_runs=0)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(LeaderboardError, match="is a file"):
        render.render([BASE], tmp_path / "file", max_runs=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (render.render([BASE], empty, generated=WHEN, max_runs=0)["index.html"]).is_file()
    (out / render.MARKER).write_text("anything")  # a marker file of another content does not make it a render
    with pytest.raises(LeaderboardError, match="not a leaderboard render"):
        render.render([BASE], out, generated=WHEN, max_runs=0)
    assert sorted(p.name for p in out.iterdir()) == [render.MARKER, "notes.txt"]
    (tmp_path / "link").symlink_to(empty)
    with pytest.raises(LeaderboardError, match="is a symbolic link; render into the folder it points to"):
        render.render([BASE], tmp_path / "link", generated=WHEN, max_runs=0)
    assert (tmp_path / "link").is_symlink()


def test_a_failure_midway_keeps_the_previous_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    render.render([BASE], out, generated=WHEN, max_runs=0)
    before = (out / "index.html").read_bytes()

    def broken(sections: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr("harness.leaderboard.writers.to_markdown", broken)
    with pytest.raises(OSError, match="disk full"):
        render.render([BASE, NEWER], out, generated=WHEN, max_runs=0)
    assert (out / "index.html").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_only_the_newest_runs_are_drawn() -> None:
    sections = render.build_sections([BASE, NEWER], figures, WHEN, max_runs=1)
    drawn = {b.id for s in sections for b in s.blocks if isinstance(b, page.Figure)}
    assert drawn == expected_ids(NEWER)
    notes = [b.text for s in sections for b in s.blocks if isinstance(b, page.Paragraph) and b.note]
    assert any(f"Only the 1 newest runs are drawn; 1 older runs ({BASE.run_id})" in n for n in notes)


def test_a_run_without_pair_gaps_says_why_there_is_no_scatter() -> None:
    data = lr.raw()
    data["pair_gaps"] = None
    record = lr.record(data)
    reason = figures.predictor_scatter(record, "x")
    assert isinstance(reason, str) and reason.startswith("no pair-gap scatter: this run trained no task pairs")


def test_without_matplotlib_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    with pytest.raises(LeaderboardError, match=r"pip install 'harness\[render\]'"):
        render.render([BASE], tmp_path / "site")
    assert not (tmp_path / "site").exists()
