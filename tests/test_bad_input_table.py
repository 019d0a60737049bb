"""The bad-input table: every kind of bad input a user can give, one row each.

Each row runs the CLI in-process and must end with one clear line on stderr (what, where —
file, line, field, key or flag — and how to fix), exit code 2, no traceback, no echoed data
value, and no partial run record: the ``--output`` folder is absent or holds neither
``results.json`` nor ``manifest.json``, a ``--leaderboard`` folder gets no record, and the files
the row started with are unchanged. Other stderr lines may only be log lines (``HH:MM:SS LEVEL``)
and the progress lines of the few rows that train (``[i/N] ...``).

A row is data: the files it starts from (``{tmp}`` is its folder), its command line, its
environment, the substrings its one line must hold, and, where files cannot say it, a named
``prepare`` step (a symlink, a saved resume state, a full disk).
"""

from __future__ import annotations

import errno
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.cli import main

SECRET = "Zqxsecretword"  # planted in bad data values: it must never reach the error line

CARD = """name = "{name}"
problem_type = "{problem}"
{labels}
text_fields = ["text"]
metrics = ["{metric}"]

[data]
format = "{fmt}"
{data_extra}
[data.splits]
train = "{train}"
dev = "{dev}"
"""


def card(
    fmt: str = "tsv",
    train: str = "train.{fmt}",
    dev: str = "dev.{fmt}",
    problem: str = "single_label_classification",
    labels: str = 'labels = ["neg", "pos"]',
    metric: str = "accuracy",
    data_extra: str = "",
    name: str = "t.mood",
) -> str:
    """A task card's TOML: task ``name`` on ``train``/``dev`` files in the card's folder."""
    return CARD.format(
        name=name,
        problem=problem,
        labels=labels,
        metric=metric,
        fmt=fmt,
        data_extra=data_extra,
        train=train.format(fmt=fmt),
        dev=dev.format(fmt=fmt),
    )


def rows(fmt: str, labels: list[str], header: bool = True) -> str:
    """A small labelled data file: one row per label, in ``fmt`` (tsv, csv, jsonl)."""
    if fmt == "jsonl":
        return "".join(f'{{"text": "a day number {i}", "label": "{label}"}}\n' for i, label in enumerate(labels))
    sep = "\t" if fmt == "tsv" else ","
    head = f"text{sep}label\n" if header else ""
    return head + "".join(f"a day number {i}{sep}{label}\n" for i, label in enumerate(labels))


GOOD = ["neg", "pos"] * 4


def cards(fmt: str = "tsv", card_text: str | None = None, **data: str | bytes) -> dict[str, str | bytes]:
    """The files of a ``--tasks-dir {tmp}/cards`` row: two cards (a run needs two tasks) on the same data,
    good unless overridden; ``t.toml`` is ``card_text``."""
    files: dict[str, str | bytes] = {
        "cards/t.toml": card(fmt) if card_text is None else card_text,
        "cards/u.toml": card(fmt, name="t.other"),
        f"cards/train.{fmt}": rows(fmt, GOOD),
        f"cards/dev.{fmt}": rows(fmt, GOOD),
    }
    files.update({f"cards/{name.replace('__', '.')}": value for name, value in data.items()})
    return {k: v for k, v in files.items() if v is not None}


def spine(**labels: object) -> str:
    """One spine user-data report per split, the first with ``labels`` (level -> pathology -> label)."""
    import json

    text = "FINDINGS: C5-C6: Mild canal stenosis. C6-C7: Normal."
    out = []
    for i, split in enumerate(("train", "dev", "test")):
        record = {
            "report_id": f"r{i}",
            "region": "cervical",
            "text": text,
            "labels": labels if i == 0 else {"C5-C6": {"canal_stenosis": "mild"}},
            "split": split,
        }
        out.append(json.dumps(record) + "\n")
    return "".join(out)


CARDS_RUN = ("run", "--tasks-dir", "{tmp}/cards", "--profile", "smoke", "--stages", "stl", "--output", "{tmp}/out")
TOY_RUN = ("run", "--tasks", "toy.colour,toy.size", "--profile", "smoke", "--output", "{tmp}/out")
TOY = {"HARNESS_PLUGIN_MODULES": "toy"}
# the rows that train: STL only, one short epoch each, jobs shared through a store (trained once per session)
SHORT = ("--stages", "stl", "--set", "max_train_examples=32", "--set", "max_eval_examples=32")
TRAIN = (*TOY_RUN, *SHORT, "--set", "epochs=1", "--job-store", "{store}")
# a run of toy.colour that saves its state after epoch 1 of 2 (the resume rows interrupt it there)
SAVING = (*TOY_RUN, *SHORT, "--set", "epochs=2", "--set", "state_every_minutes=0")
SAVING += ("--job-store", "none")
SPINE_RUN = ("run", "--plugin", "spine", "--data", "{tmp}/reports.jsonl", "--profile", "smoke", "--output", "{tmp}/out")
SPINE_RUN += ("--tasks", "cervical.canal_stenosis,cervical.disc", "--stages", "stl")


@dataclass(frozen=True)
class Bad:
    """One bad input: start from ``files``, run ``argv`` with ``env``; the one line holds every ``expect``."""

    id: str
    argv: tuple[str, ...]
    expect: tuple[str, ...]
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    prepare: str = ""  # a PREPARE step, for what files cannot say


TABLE = [
    # --- data files of task cards: malformed rows, column counts, labels, splits, encoding, size ---
    Bad(
        "tsv-row-with-too-many-fields",
        CARDS_RUN,
        ("cards/train.tsv", "line 10", "fields"),
        cards(train__tsv=rows("tsv", GOOD) + f"one\ttoo\tmany {SECRET}\n"),
    ),
    Bad(
        "csv-row-with-too-few-fields",
        CARDS_RUN,
        ("cards/dev.csv", "line 4", "field 'label'", "fill it in"),
        cards("csv", dev__csv="text,label\nfine,pos\nok,neg\nlonely\n"),
    ),
    Bad(
        "csv-unclosed-quote",
        CARDS_RUN,
        ("cards/train.csv", "line 10", "never closed"),
        cards("csv", train__csv=rows("csv", GOOD) + f'"never closed {SECRET},pos\n'),
    ),
    Bad(
        "jsonl-malformed-row",
        CARDS_RUN,
        ("cards/train.jsonl", "line 9", "not valid JSON", "one object per line"),
        cards("jsonl", train__jsonl=rows("jsonl", GOOD) + f'{{"text": "{SECRET}", "label": \n'),
    ),
    Bad(
        "jsonl-row-not-an-object",
        CARDS_RUN,
        ("cards/dev.jsonl", "line 2", "an array, not a JSON object"),
        cards("jsonl", dev__jsonl=rows("jsonl", ["neg"]) + '["a list", "pos"]\n' + rows("jsonl", ["pos"])),
    ),
    Bad(
        "tsv-unknown-label",
        CARDS_RUN,
        ("cards/train.tsv", "line 5", "field 'label'", "not one of the labels: neg, pos"),
        cards(train__tsv=rows("tsv", ["neg", "pos", "neg", SECRET, "pos"])),
    ),
    Bad(
        "csv-unknown-label",
        CARDS_RUN,
        ("cards/dev.csv", "line 2", "field 'label'", "not one of the labels"),
        cards("csv", dev__csv=rows("csv", [SECRET, "pos"])),
    ),
    Bad(
        "jsonl-unknown-label",
        CARDS_RUN,
        ("cards/train.jsonl", "line 3", "field 'label'", "not one of the labels"),
        cards("jsonl", train__jsonl=rows("jsonl", ["neg", "pos", SECRET])),
    ),
    Bad(
        "multilabel-unknown-name",
        CARDS_RUN,
        ("cards/train.tsv", "line 2", "field 'label'", "not one of the labels"),
        cards(
            card_text=card(problem="multi_label_classification", metric="f1_micro"),
            train__tsv=f"text\tlabel\none\tneg,{SECRET}\n",
        ),
    ),
    Bad(
        "regression-label-not-a-number",
        CARDS_RUN,
        ("cards/train.tsv", "line 3", "field 'label'", "not a number"),
        cards(
            card_text=card(problem="regression", labels="", metric="mse"),
            train__tsv=f"text\tlabel\none\t0.5\ntwo\t{SECRET}\n",
        ),
    ),
    Bad(
        "label-value-missing",
        CARDS_RUN,
        ("cards/train.tsv", "line 3", "field 'label'", "data.missing_label"),
        cards(train__tsv="text\tlabel\none\tpos\ntwo\t\nthree\tneg\n"),
    ),
    Bad(
        "label-column-missing",
        CARDS_RUN,
        ("cards/train.tsv", "label column 'label' is missing", "labelled"),
        cards(train__tsv="text\tgrade\none\tpos\n"),
    ),
    Bad(
        "text-column-missing",
        CARDS_RUN,
        ("cards/dev.tsv", "'text'", "missing", "columns: body, label"),
        cards(dev__tsv="body\tlabel\none\tpos\n"),
    ),
    Bad(
        "header-names-a-column-twice",
        CARDS_RUN,
        ("cards/train.tsv", "line 1", "twice"),
        cards(train__tsv="text\ttext\tlabel\na\tb\tpos\n"),
    ),
    Bad(
        "split-file-missing",
        CARDS_RUN,
        ("split 'dev'", "dev.tsv", "--data DIR"),
        cards(dev__tsv=None),  # type: ignore[arg-type]
    ),
    Bad(
        "split-file-empty",
        CARDS_RUN,
        ("cards/train.tsv", "empty", "header row"),
        cards(train__tsv=""),
    ),
    Bad(
        "split-header-only",
        CARDS_RUN,
        ("cards/train.tsv", "header but no data rows", "add rows"),
        cards(train__tsv="text\tlabel\n"),
    ),
    Bad(
        "data-not-utf8",
        CARDS_RUN,
        ("cards/train.tsv", "line 3", "not UTF-8", "save the file as UTF-8"),
        cards(train__tsv=b"text\tlabel\nfine\tpos\ncaf\xe9 " + SECRET.encode() + b"\tneg\n"),
    ),
    Bad(
        "ten-megabyte-line",
        CARDS_RUN,
        ("cards/train.tsv", "line 3", "field 'text'", "10,485,7", "over the limit"),
        cards(train__tsv="text\tlabel\nfine\tpos\n" + SECRET * (10 * 2**20 // len(SECRET)) + "\tneg\n"),
    ),
    Bad(
        "data-path-is-a-file",
        (*CARDS_RUN, "--data", "{tmp}/cards/train.tsv"),
        ("--data", "is a file", "folder"),
        cards(),
    ),
    # --- task cards: unknown keys, wrong types, invalid TOML, bad values ---
    Bad(
        "card-unknown-key",
        CARDS_RUN,
        ("cards/t.toml", "'lables'", "did you mean 'labels'"),
        cards(card_text=card().replace("labels =", "lables =")),
    ),
    Bad(
        "card-wrong-type",
        CARDS_RUN,
        ("cards/t.toml", "'labels' must be a list of strings", "got str"),
        cards(card_text=card(labels='labels = "neg,pos"')),
    ),
    Bad(
        "card-invalid-toml",
        CARDS_RUN,
        ("cards/t.toml", "invalid TOML"),
        cards(card_text=card() + "broken = [\n"),
    ),
    Bad(
        "card-missing-key",
        CARDS_RUN,
        ("cards/t.toml", "'metrics'", "missing"),
        cards(card_text=card().replace('metrics = ["accuracy"]\n', "")),
    ),
    Bad(
        "card-unknown-problem-type",
        CARDS_RUN,
        ("cards/t.toml", "problem", "single_label_classification"),
        cards(card_text=card(problem="classify")),
    ),
    Bad(
        "card-unknown-metric",
        CARDS_RUN,
        ("'acuracy'", "Did you mean 'accuracy'"),
        cards(card_text=card(metric="acuracy")),
    ),
    Bad(
        "card-unknown-split",
        CARDS_RUN,
        ("cards/t.toml", "'data.splits.valid'", "did you mean"),
        cards(card_text=card().replace("dev =", "valid =")),
    ),
    Bad(
        "card-not-utf8",
        CARDS_RUN,
        ("cards/t.toml", "line 1", "not UTF-8"),
        cards(card_text=b"# \xff\n" + card().encode()),  # type: ignore[arg-type]
    ),
    Bad(
        "two-cards-one-task-name",
        CARDS_RUN,
        ("'t.mood'", "declared twice", "cards/t.toml", "cards/u.toml"),
        {**cards(), "cards/u.toml": card()},
    ),
    Bad(
        "tasks-dir-without-cards",
        ("run", "--tasks-dir", "{tmp}/empty", "--profile", "smoke", "--output", "{tmp}/out"),
        ("empty", "no task cards (*.toml)"),
        {"empty/readme.txt": "nothing\n"},
    ),
    # --- data paths of a card that leave its data root ---
    Bad(
        "card-path-with-dotdot",
        CARDS_RUN,
        ("cards/t.toml", "'data.splits.train'", "outside", "allow_outside_root"),
        {**cards(card_text=card(train="../outside.tsv")), "outside.tsv": rows("tsv", GOOD)},
    ),
    Bad(
        "card-path-absolute",
        CARDS_RUN,
        ("cards/t.toml", "'data.splits.dev'", "outside", "allow_outside_root"),
        {**cards(card_text=card(dev="/etc/hostname"))},
    ),
    Bad(
        "card-path-symlink-out-of-root",
        CARDS_RUN,
        ("'data.splits.train'", "outside", "allow_outside_root"),
        {**cards(train__tsv=None), "outside.tsv": rows("tsv", GOOD)},  # type: ignore[arg-type]
        prepare="symlink_train",
    ),
    # --- config files ---
    Bad(
        "config-unknown-key",
        (*TOY_RUN, "--config", "{tmp}/c.toml"),
        ("c.toml", "'epoch'", "did you mean 'epochs'"),
        {"c.toml": "epoch = 2\n"},
        TOY,
    ),
    Bad(
        "config-wrong-type",
        (*TOY_RUN, "--config", "{tmp}/c.toml"),
        ("c.toml", "epochs must be int"),
        {"c.toml": 'epochs = "two"\n'},
        TOY,
    ),
    Bad(
        "config-bad-value",
        (*TOY_RUN, "--config", "{tmp}/c.toml"),
        ("c.toml", "learning_rate must be a positive"),
        {"c.toml": "learning_rate = -0.5\n"},
        TOY,
    ),
    Bad(
        "config-invalid-toml",
        (*TOY_RUN, "--config", "{tmp}/c.toml"),
        ("c.toml", "invalid TOML", "line 1"),
        {"c.toml": "epochs = = 2\n"},
        TOY,
    ),
    Bad(
        "config-file-missing",
        (*TOY_RUN, "--config", "{tmp}/nowhere.toml"),
        ("nowhere.toml", "does not exist"),
        {},
        TOY,
    ),
    # --- CLI values ---
    Bad("cli-seeds-zero", (*TOY_RUN, "--seeds", "0"), ("--seeds 0", "seeds must be positive"), env=TOY),
    Bad("cli-seeds-not-a-number", (*TOY_RUN, "--seeds", "two"), ("--seeds", "'two'", "harness run --help"), env=TOY),
    Bad(
        "cli-workers-negative",
        (*TOY_RUN, "--workers", "-1"),
        ("--workers -1", "workers and job_cpus must be >= 0"),
        env=TOY,
    ),
    Bad("cli-set-unknown-key", (*TOY_RUN, "--set", "unknown=1"), ("--set unknown=1", "unknown config key"), env=TOY),
    Bad("cli-set-epochs-abc", (*TOY_RUN, "--set", "epochs=abc"), ("--set epochs=abc", "epochs must be int"), env=TOY),
    Bad("cli-set-without-equals", (*TOY_RUN, "--set", "epochs"), ("--set 'epochs'", "key=value"), env=TOY),
    Bad("cli-stages-bogus", (*TOY_RUN, "--stages", "bogus"), ("--stages", "bogus", "choose among stl"), env=TOY),
    Bad("cli-groupers-bogus", (*TOY_RUN, "--groupers", "bogus"), ("grouper", "'bogus'", "known"), env=TOY),
    Bad("cli-profile-bogus", (*TOY_RUN, "--profile", "bogus"), ("--profile", "'bogus'", "smoke"), env=TOY),
    Bad("cli-unknown-flag", (*TOY_RUN, "--epochs", "2"), ("--epochs", "--help"), env=TOY),
    Bad(
        "cli-data-option-without-equals", (*TOY_RUN, "--data-option", "noise"), ("--data-option", "key=value"), env=TOY
    ),
    Bad("cli-data-missing", (*TOY_RUN, "--data", "{tmp}/nowhere"), ("--data", "nowhere", "no such file"), env=TOY),
    Bad(
        "cli-model-path-missing",
        (*TOY_RUN, "--model", "{tmp}/no-model"),
        ("--model", "no-model", "does not exist"),
        env=TOY,
    ),
    Bad(
        "cli-leaderboard-is-a-file",
        (*TOY_RUN, "--leaderboard", "{tmp}/board.txt"),
        ("--leaderboard", "board.txt"),
        {"board.txt": "mine\n"},
        TOY,
    ),
    Bad("cli-resume-nothing", (*TOY_RUN, "--resume"), ("--resume", "no run to resume", "drop --resume"), env=TOY),
    # --- unknown names, failing plugins ---
    Bad(
        "unknown-task-name",
        ("run", "--tasks", "toy.colr", "--profile", "smoke"),
        ("'toy.colr'", "Did you mean 'toy.colour'"),
        env=TOY,
    ),
    Bad("unknown-plugin-name", ("run", "--plugin", "spnie", "--profile", "smoke"), ("'spnie'", "Did you mean 'spine'")),
    Bad(
        "plugin-import-error",
        ("run", "--plugin", "broken", "--profile", "smoke"),
        ("plugin 'broken' failed to load", "ImportError"),
        env={"HARNESS_PLUGIN_MODULES": "broken"},
    ),
    Bad(
        "plugin-exits-at-import",
        ("run", "--plugin", "exits", "--profile", "smoke"),
        ("plugin 'exits' failed to load", "needs a GPU"),
        env={"HARNESS_PLUGIN_MODULES": "exits"},
    ),
    Bad(
        "plugin-hook-raises",
        ("run", "--tasks", "raising.first", "--profile", "smoke"),
        ("'raising.first'", "plugin 'raising' failed to load", "RuntimeError"),
        env={"HARNESS_PLUGIN_MODULES": "raising"},
    ),
    Bad(
        "plugin-misspelled-hook",
        ("run", "--plugin", "misspelled", "--profile", "smoke"),
        ("plugin 'misspelled'", "register_task"),
        env={"HARNESS_PLUGIN_MODULES": "misspelled"},
    ),
    Bad(
        "two-plugins-one-task-name",
        (*TOY_RUN, "--tasks", "toy.colour"),
        ("'toy.colour'", "duplicate", "toy"),
        env={"HARNESS_PLUGIN_MODULES": "toy,duplicate"},
    ),
    Bad(
        "one-plugin-one-name-twice",
        ("run", "--tasks", "twins.task", "--profile", "smoke"),
        ("'twins.task'", "twice", "rename"),
        env={"HARNESS_PLUGIN_MODULES": "twins"},
    ),
    Bad(
        "plugin-loader-raises",
        (
            "run",
            "--tasks",
            "badloader.missing,toy.colour",
            "--profile",
            "smoke",
            "--stages",
            "stl",
            "--output",
            "{tmp}/out",
        ),
        ("'badloader.missing'", "'train'", "badloader", "FileNotFoundError"),
        env={"HARNESS_PLUGIN_MODULES": "badloader,toy"},
    ),
    Bad(
        "plugin-loader-returns-none",
        (
            "run",
            "--tasks",
            "badloader.none,toy.colour",
            "--profile",
            "smoke",
            "--stages",
            "stl",
            "--output",
            "{tmp}/out",
        ),
        ("'badloader.none'", "'train'", "badloader", "None"),
        env={"HARNESS_PLUGIN_MODULES": "badloader,toy"},
    ),
    # --- spine user data ---
    Bad(
        "spine-unknown-level",
        SPINE_RUN,
        ("reports.jsonl:1", "field labels.C9-C10", "unknown level", "expected one of C2-C3"),
        {"reports.jsonl": spine(**{"C9-C10": {"canal_stenosis": "mild"}})},
    ),
    Bad(
        "spine-unknown-severity",
        SPINE_RUN,
        ("reports.jsonl:1", "labels.C5-C6.canal_stenosis", "unknown severity", "did you mean 'severe'"),
        {"reports.jsonl": spine(**{"C5-C6": {"canal_stenosis": "sever"}})},
    ),
    Bad(
        "spine-unknown-pathology",
        SPINE_RUN,
        ("reports.jsonl:1", "'canal_stenoss'", "did you mean 'canal_stenosis'"),
        {"reports.jsonl": spine(**{"C5-C6": {"canal_stenoss": "mild"}})},
    ),
    Bad(
        "spine-not-utf8",
        SPINE_RUN,
        ("reports.jsonl:2", "not valid UTF-8", "save the file as UTF-8"),
        {"reports.jsonl": spine(C5C6={}).encode().replace(b"r1", b"r\xff", 1)},
    ),
    # --- plugins' science: groupers and predictors (these rows train, once for all through the store) ---
    Bad(
        "grouper-returns-a-non-partition",
        (*TRAIN, "--groupers", "nonpartition"),
        ("grouper 'nonpartition' (plugin 'badscience')", "toy.colour", "--resume"),
        env={"HARNESS_PLUGIN_MODULES": "toy,badscience"},
    ),
    Bad(
        "predictor-returns-a-wrong-shape",
        (*TRAIN, "--groupers", "cluster:wrongshape"),
        ("predictor 'wrongshape' (plugin 'badscience')", "shape (2, 3)", "--resume"),
        env={"HARNESS_PLUGIN_MODULES": "toy,badscience"},
    ),
    Bad(
        "predictor-returns-all-nan",
        (*TRAIN, "--groupers", "cluster:allnan"),
        ("predictor 'allnan'", "NaN", "--resume"),
        env={"HARNESS_PLUGIN_MODULES": "toy,badscience"},
    ),
    # --- a run's own files: damaged resume state, a full disk ---
    Bad(
        "resume-state-weights-truncated",
        (*SAVING, "--resume"),
        ("cannot resume from", "state", "delete that folder"),
        env=TOY,
        prepare="damaged_weights",
    ),
    Bad(
        "resume-state-history-garbled",
        (*SAVING, "--resume"),
        ("cannot resume from", "history.json", "delete that folder"),
        env=TOY,
        prepare="damaged_history",
    ),
    Bad(
        "disk-full-writing-results",
        TRAIN,
        ("results.json", "No space left on device", "--resume"),
        env=TOY,
        prepare="disk_full",
    ),
]


# --- prepare steps: what a row's files cannot say --------------------------------------------


def _symlink_train(tmp: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "cards" / "train.tsv").symlink_to(tmp / "outside.tsv")


def _saved_state(tmp: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A run of toy.colour interrupted right after its first saved epoch: the job's state folder."""
    import harness.training.runner as runner

    original = runner.save_state

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "save_state", save_then_stop)
    assert main([a.format(tmp=tmp) for a in SAVING]) == 130
    monkeypatch.setattr(runner, "save_state", original)
    (state,) = (tmp / "out" / "jobs").glob("*/state")
    return state


def _damaged_weights(tmp: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (weights,) = _saved_state(tmp, store, monkeypatch).glob("model*.safetensors")
    weights.write_bytes(weights.read_bytes()[:100])


def _damaged_history(tmp: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (_saved_state(tmp, store, monkeypatch) / "history.json").write_text('[{"epoch": 1, "selec')


def _disk_full(tmp: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing results.json fails as on a full disk (after the jobs finished and the manifest was written)."""
    import json

    from harness.protocol import rundir

    mkstemp, dump, opened = rundir.tempfile.mkstemp, json.dump, []

    def remember(*args, **kwargs):
        opened.append(kwargs.get("prefix", ""))
        return mkstemp(*args, **kwargs)

    def full(data, f, *args, **kwargs):
        if opened and opened[-1].startswith(".results.json"):
            f.write("{")  # a first block went out before the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device")
        return dump(data, f, *args, **kwargs)

    monkeypatch.setattr(rundir.tempfile, "mkstemp", remember)
    monkeypatch.setattr(rundir.json, "dump", full)


PREPARE: dict[str, Callable[[Path, Path, pytest.MonkeyPatch], None]] = {
    "symlink_train": _symlink_train,
    "damaged_weights": _damaged_weights,
    "damaged_history": _damaged_history,
    "disk_full": _disk_full,
}

# --- the check --------------------------------------------------------------------------------

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) ")
PROGRESS_LINE = re.compile(r"^(\[\d+/\d+\] |progress: )")


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 2**20
    }


def _write(root: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse, or a plugin: the code it exits with
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One job store for the rows that train: their STL jobs are trained once and reused."""
    return tmp_path_factory.mktemp("bad-input-store")


@pytest.mark.parametrize("case", TABLE, ids=[case.id for case in TABLE])
def test_bad_input_gives_one_clear_line(case: Bad, tmp_path, store, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # messages name files relative to the working folder
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    _write(tmp_path, case.files)
    if case.prepare:
        PREPARE[case.prepare](tmp_path, store, monkeypatch)
    capsys.readouterr()
    board = tmp_path / "board"
    board.mkdir()
    before = _snapshot(tmp_path)
    argv = [a.format(tmp=tmp_path, store=store) for a in case.argv]

    code = _exit_code(argv)

    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    said = [line for line in lines if not LOG_LINE.match(line) and not PROGRESS_LINE.match(line)]
    assert len(said) == 1, err
    line = said[0]
    assert line.startswith("error: "), line
    for text in case.expect:
        assert text in line, f"{text!r} not in {line!r}"
    assert SECRET not in err
    assert code == 2, (code, line)
    out = tmp_path / "out"
    assert not (out / "results.json").exists() and not (out / "manifest.json").exists()
    assert not any(board.iterdir())
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing it started with changed


def test_the_table_covers_at_least_45_distinct_inputs():
    ids = [case.id for case in TABLE]
    assert len(set(ids)) == len(ids) >= 45
    assert len({(case.argv, tuple(case.files.items()), case.prepare) for case in TABLE}) == len(TABLE)


def test_a_card_reads_outside_its_data_root_only_when_the_user_allows_it(tmp_path):
    from harness.api import LoadContext
    from harness.data.cards import load_card
    from harness.errors import DataError

    _write(tmp_path, {**cards(card_text=card(train="../outside.tsv")), "outside.tsv": rows("tsv", ["pos", "neg"])})
    spec = load_card(tmp_path / "cards" / "t.toml")
    with pytest.raises(DataError, match="outside the data root"):
        spec.loader("train", LoadContext())
    allowed = spec.loader("train", LoadContext(options={"allow_outside_root": "true"}))
    assert allowed["label"] == [1, 0]
    with pytest.raises(DataError, match="allow_outside_root=maybe: expected true or false"):
        spec.loader("train", LoadContext(options={"allow_outside_root": "maybe"}))
