"""Protected health information: report text never leaves the user's data file unless asked.

Canary words are planted in the report text of a generated spine corpus: in a level's findings,
the history, the impression, findings text that names no level, upper- and lower-case variants,
one split over a line break and one inside a very long text. Then every file the product writes
(run directory, leaderboard, job store, tokenization cache, Hugging Face caches, the temp folder,
rendered pages, predictions), its stdout and stderr with debug logging, every log record and
warning of an in-process run, and the decoded TensorBoard events are searched for the canaries,
case-insensitively, as raw bytes. Only ``harness predict --echo-text`` may write text, and only
into its predictions file.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.cli import main
from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow

# Every canary holds one of these (9 bytes: no chance match in weights or token ids); the second
# half of the canary split over a line break has its own.
MARKERS = (b"zqxcanary", b"qvxcanary")
LONG_FILLER = "The disc space is preserved and the foramina are patent. " * 3500  # ~200 kB of one snippet
TASKS = "cervical.canal_stenosis,cervical.disc"
HISTORY_RE = re.compile(r"^(?:clinical )?(?:history|indication):", re.MULTILINE | re.IGNORECASE)
IMPRESSION_RE = re.compile(r"^impression:", re.MULTILINE | re.IGNORECASE)
FINDINGS_RE = re.compile(r"^findings:", re.MULTILINE | re.IGNORECASE)


def _plants() -> list[tuple[str, Callable[[str], str]]]:
    """(kind, how to plant it in a report's text) for each place a canary goes."""

    def after(pattern: re.Pattern[str], canary: str) -> Callable[[str], str]:
        def plant(text: str) -> str:
            found = pattern.search(text)
            assert found is not None, pattern
            return text[: found.end()] + f" {canary} " + text[found.end() :]

        return plant

    def at_level(canary: str) -> Callable[[str], str]:
        """After the first word of the first level's snippet, as the segmenter finds it."""

        def plant(text: str) -> str:
            from harness_spine.segmenter import segment

            _, snippet = segment(text, "cervical")[0]
            word = snippet.split()[0]
            start = text.index(snippet.split(". ")[0], FINDINGS_RE.search(text).end())  # type: ignore[union-attr]
            return text[: start + len(word)] + f" {canary}" + text[start + len(word) :]

        return plant

    return [
        ("finding at a level", at_level("ZqxcanaryFind")),
        ("history", after(HISTORY_RE, "ZqxcanaryHist")),
        ("impression", after(IMPRESSION_RE, "ZqxcanaryImpr noted.")),
        ("findings naming no level", after(FINDINGS_RE, "ZqxcanaryFree noted.")),
        ("upper case", at_level("ZQXCANARYUPPER")),
        ("lower case", at_level("zqxcanarylower")),
        ("split over a line break", at_level("ZqxcanaryHead\nQvxcanaryTail")),
        ("very long text", at_level(f"ZqxcanaryLong {LONG_FILLER} ZqxcanaryLongEnd")),
    ]


def _canary_corpus(out: Path) -> Path:
    """A generated cervical corpus (48 reports), each report carrying one kind of canary."""
    assert main(["spine", "generate", "--out", str(out), "--reports", "48", "--region", "cervical", "--seed", "5"]) == 0
    path = out / "reports.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    plants = _plants()
    for i, record in enumerate(records):
        kind, plant = plants[i % len(plants)]
        text = plant(record["text"])
        assert text != record["text"], kind
        record["text"] = text
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "ground_truth.json").unlink()  # not report text; keeps the scanned world to what the harness wrote
    return path


def _leaks(*roots: Path, skip: tuple[Path, ...] = ()) -> list[str]:
    """Every file under ``roots`` (but ``skip``) whose bytes hold a canary, case-insensitively."""
    found = []
    for file in _files(*roots):
        if any(file == s or s in file.parents for s in skip):
            continue
        data = file.read_bytes().lower()
        found += [f"{file}: {m.decode()}" for m in MARKERS if m in data]
    return found


def _files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _text_leaks(text: str) -> list[str]:
    lower = text.lower()
    return [m.decode() for m in MARKERS if m.decode() in lower]


def _events(folder: Path) -> list[str]:
    """Every TensorBoard event under ``folder``, decoded into its protobuf text form."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = [p for p in _files(folder) if ".tfevents." in p.name]
    return [str(event) for file in files for event in EventFileLoader(str(file)).Load()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """The corpus and every folder a harness process of this module may write to."""
    root = tmp_path_factory.mktemp("phi")
    data = _canary_corpus(root / "data")
    folders = {name: root / name for name in ("home", "hf", "cache", "tmp", "store", "leaderboard")}
    for folder in folders.values():
        folder.mkdir()
    return {"root": root, "data": data, **folders}


def _env(world: dict[str, Path]) -> dict[str, str]:
    return subprocess_env(
        HOME=str(world["home"]),  # ~/.cache and any dotfile a library writes land in the scanned world
        XDG_CACHE_HOME=str(world["home"] / ".cache"),
        HF_HOME=str(world["hf"]),
        HF_DATASETS_CACHE=str(world["hf"] / "datasets"),
        HARNESS_CACHE=str(world["cache"]),
        TMPDIR=str(world["tmp"]),
        MPLCONFIGDIR=str(world["home"] / "mpl"),
    )


def _harness(world: dict[str, Path], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *argv], env=_env(world), capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def spine_run(world) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A successful spine run on the canary corpus: TensorBoard, leaderboard, job store, debug logging."""
    out = world["root"] / "run"
    done = _harness(
        world,
        "run",
        "-v",
        "--plugin",
        "spine",
        "--data",
        str(world["data"]),
        "--profile",
        "smoke",
        "--tasks",
        TASKS,
        "--stages",
        "stl,all",
        "--set",
        "epochs=1",
        "--report-to",
        "tensorboard",
        "--leaderboard",
        str(world["leaderboard"]),
        "--job-store",
        str(world["store"]),
        "--output",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def test_a_spine_run_writes_no_report_text_anywhere(world, spine_run):
    out, done = spine_run
    written = _files(out, world["leaderboard"], world["store"], world["cache"])
    names = {p.name for p in written}
    # the scan reaches every kind of file a run writes (else it would pass by looking at nothing)
    for name in ("config.json", "manifest.json", "results.json", "result.json", "harness.json", "tokenizer.json"):
        assert name in names, name
    assert any(p.suffix == ".arrow" for p in written)  # the tokenization cache
    assert list((world["leaderboard"] / "runs").glob("*.json")) and list(world["store"].rglob("result.json"))
    assert _leaks(world["root"], skip=(world["data"],)) == []
    assert " DEBUG " in done.stderr  # -v: debug logging was on
    assert _text_leaks(done.stdout + done.stderr) == []
    events = _events(out / "tensorboard")
    assert len(events) > 10 and any("train/loss" in e for e in events)
    assert [e for e in events if _text_leaks(e)] == []


def test_the_rendered_leaderboard_holds_no_report_text(world, spine_run):
    pages = world["root"] / "pages"
    done = _harness(world, "leaderboard", "render", "--dir", str(world["leaderboard"]), str(pages))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {"index.html", "leaderboard.md"} <= {p.name for p in _files(pages)}
    assert _leaks(world["root"], skip=(world["data"],)) == []
    assert _text_leaks(done.stdout + done.stderr) == []


def test_the_views_of_a_run_and_its_data_print_no_report_text(world, spine_run, capsys):
    out, _ = spine_run
    views = [
        ["show", str(out)],
        ["show", str(out), "--json"],
        ["leaderboard", "show", "--dir", str(world["leaderboard"])],
        ["list", "--plugin", "spine", "--data", str(world["data"])],
        ["list", "--plugin", "spine", "--data", str(world["data"]), "--json"],
        ["spine", "evaluate", str(out), "--data", str(world["data"]), "--json", "-"],
    ]
    for argv in views:
        assert main(argv) == 0, argv
        printed = capsys.readouterr()
        assert printed.out or printed.err
        assert _text_leaks(printed.out + printed.err) == [], argv


def test_predict_writes_text_only_when_asked_and_only_into_its_output(world, spine_run):
    out, _ = spine_run
    plain, echoed = world["root"] / "predictions.jsonl", world["root"] / "echoed.jsonl"
    done = _harness(world, "predict", "-v", str(out), "--input", str(world["data"]), "--output", str(plain))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(plain.read_text().splitlines()) > 100
    assert _leaks(world["root"], skip=(world["data"],)) == []
    assert _text_leaks(done.stdout + done.stderr) == []

    done = _harness(world, "predict", str(out), "--input", str(world["data"]), "--output", str(echoed), "--echo-text")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _text_leaks(done.stdout + done.stderr) == []
    assert _leaks(world["root"], skip=(world["data"], echoed)) == []
    # the echoed snippets hold the level canaries, so the scan above would have seen a copy elsewhere
    text = echoed.read_text().lower()
    for canary in ("zqxcanaryfind", "zqxcanaryupper", "zqxcanarylower", "zqxcanaryhead", "zqxcanarylongend"):
        assert canary in text, canary
    echoed.unlink()  # the user's to delete; the next tests scan the same folders


class _Records(logging.Handler):
    """Keeps every record it is handed, formatted (message and traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.levels: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(logging.Formatter().format(record))
        self.levels.append(record.levelno)


# not torch: it sets its loggers' levels on first use, and a level restored under it would let its
# exit-time statistics reach a closed stream
LOGGERS = ("harness", "harness_spine", "transformers", "datasets", "accelerate", "tokenizers", "py.warnings")


def test_a_run_that_fails_mid_way_leaks_no_report_text(world, monkeypatch, capsys):
    """A job that diverges in its first epoch: the job's error record, the run's files, the error
    line, every log record at debug level of the harness and its libraries, and every warning."""
    for name, value in _env(world).items():
        if name != "PYTHONPATH":
            monkeypatch.setenv(name, value)
    monkeypatch.setattr("tempfile.tempdir", None)  # TMPDIR is read again
    records = _Records()
    levels = {name: logging.getLogger(name).level for name in ("", *LOGGERS)}
    for name in LOGGERS:  # not the root logger: harness.cli's logging set-up replaces its handlers
        logging.getLogger(name).setLevel(logging.DEBUG)  # setLevel: it also clears the loggers' level caches
        logging.getLogger(name).addHandler(records)
    out = world["root"] / "failed"
    argv = ["run", "-v", "--plugin", "spine", "--data", str(world["data"]), "--profile", "smoke", "--tasks", TASKS]
    argv += ["--stages", "stl,all"]
    argv += ["--set", "epochs=1", "--set", "learning_rate=1e30", "--set", "head_learning_rate=1e30"]
    argv += ["--job-store", str(world["store"]), "--output", str(out)]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = main(argv)
    finally:  # -v left the root at debug: libraries that log at exit would write to a closed stream
        for name, level in levels.items():
            logging.getLogger(name).removeHandler(records)
            logging.getLogger(name).setLevel(level)
    err = capsys.readouterr().err
    assert code != 0
    errors = list(out.rglob("error.json"))
    assert errors and "diverged" in json.loads(errors[0].read_text())["error"]
    assert "diverged" in err and " DEBUG " in err
    assert _leaks(world["root"], skip=(world["data"],)) == []
    assert _text_leaks(err) == []
    assert any("diverged" in text for text in records.texts) and logging.DEBUG in records.levels
    assert [text for text in records.texts if _text_leaks(text)] == []
    assert [str(w.message) for w in caught if _text_leaks(str(w.message))] == []


def test_a_bad_record_late_in_the_data_fails_naming_it_without_its_text(world, tmp_path):
    """Text in a label (a misplaced column) on the last line: one error line naming file, line and
    field, the value by its length; nothing written that holds text."""
    lines = world["data"].read_text().splitlines()
    record = json.loads(lines[-1])
    level = next(iter(record["labels"]))
    label = record["labels"][level]["disc"] = "bulge, see ZqxcanaryLabel note"
    lines[-1] = json.dumps(record)
    bad = tmp_path / "reports.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    argv = ["run", "-v", "--plugin", "spine", "--data", str(bad), "--profile", "smoke", "--tasks", TASKS]
    done = _harness(world, *argv, "--output", str(out))
    assert done.returncode == 2
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"{bad}:{len(lines)}: field labels.{level}.disc: unknown label (a string of {len(label)} characters)" in line
    assert "Traceback" not in done.stderr and _text_leaks(done.stdout + done.stderr) == []
    assert _leaks(out, world["cache"], world["tmp"]) == []
