"""TOML task cards: validation errors name file and key; loaders give the documented Dataset."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import pytest  # noqa: E402

from harness import MISSING_LABEL, LoadContext, ProblemType  # noqa: E402
from harness.data.cards import load_card, load_cards  # noqa: E402
from harness.errors import DataError, TaskSpecError  # noqa: E402

CARD = """\
name = "toy"
description = "a toy task"
problem_type = "single_label_classification"
labels = ["neg", "pos"]
text_fields = ["text"]
metrics = ["accuracy"]

[data]
format = "csv"
label_map = { "0" = "neg", "1" = "pos" }

[data.splits]
train = "train.csv"
dev = "dev.csv"
"""

TRAIN_CSV = 'text,label,extra\n"hello, world",1,a\n"two\nlines",0,b\nplain,pos,c\n'


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def toy(folder: Path, card: str = CARD, train: str = TRAIN_CSV, dev: str = "text,label\nok,0\n") -> Path:
    write(folder, "train.csv", train)
    write(folder, "dev.csv", dev)
    return write(folder, "toy.toml", card)


# --- card validation ---------------------------------------------------------------------------

FORMAT = 'format = "csv"'
HUB = '[data.hub]\npath = "x"\nsplits = { train = "train" }\nnam = "y"\n\n[data.splits]'
# (case, text replaced in CARD, replacement, expected part of the message)
BROKEN = [
    ("metrcs", "metrics =", "metrcs =", "key 'metrcs' is unknown; did you mean 'metrics'?"),
    ("nested-key", FORMAT, 'formt = "csv"', "did you mean 'data.format'?"),
    ("labels-int", '["neg", "pos"]', "3", "'labels' must be a list of strings, got int"),
    ("labels-mixed", '["neg", "pos"]', '["neg", 1]', "'labels' must be a list of strings, got a list containing int"),
    ("header-str", FORMAT, FORMAT + '\nheader = "yes"', "'data.header' must be a boolean, got str"),
    ("split-type", 'dev = "dev.csv"', "dev = 3", "'data.splits.dev' must be a path or a table, got int"),
    ("split-key", '"dev.csv"', '{ pth = "dev.csv" }', "did you mean 'data.splits.dev.path'?"),
    ("split-name", "dev =", "devv =", "key 'data.splits.devv' is unknown; did you mean 'data.splits.dev'?"),
    ("problem", "single_label_classification", "classification", "unknown problem_type 'classification'"),
    ("missing", 'text_fields = ["text"]\n', "", "required key 'text_fields' is missing"),
    ("missing-data", CARD[CARD.index("[data]") :], "", "required key 'data' is missing"),
    ("format", '"csv"', '"xlsx"', "'data.format' must be one of tsv, csv, jsonl, got 'xlsx'"),
    ("columns-with-header", FORMAT, FORMAT + '\ncolumns = ["a"]', "set 'data.header = false'"),
    ("no-columns", FORMAT, FORMAT + "\nheader = false", "list its column names in 'columns'"),
    ("label-map", '"1" = "pos"', '"1" = "positive"', "maps '1' to 'positive', which is not in 'labels'"),
    ("three-texts", '["text"]', '["a", "b", "c"]', "task 'toy': text_fields needs one or two fields"),
    ("no-dev", 'dev = "dev.csv"\n', "", "splits must include 'train' and 'dev'"),
    ("label-field-text", '["text"]', '["label"]', "must not include 'label'"),
    ("separator", FORMAT, FORMAT + '\nlabel_separator = ";"', "only for multi_label"),
    ("hub-key", "[data.splits]", HUB, "did you mean 'data.hub.name'?"),
]


@pytest.mark.parametrize(("case", "old", "new", "message"), BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_card_names_file_and_key(tmp_path: Path, case: str, old: str, new: str, message: str) -> None:
    assert old in CARD
    path = write(tmp_path, f"{case}.toml", CARD.replace(old, new, 1))
    with pytest.raises(TaskSpecError) as err:
        load_card(path)
    where, _, rest = str(err.value).partition(": ")
    assert where.endswith(path.name)
    assert message in rest


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", 'name = "x"\n\nlabels = ["a" "b"]\n')
    with pytest.raises(TaskSpecError, match=r"bad\.toml: invalid TOML: .*line 3"):
        load_card(path)


def test_load_cards_sorted_and_strict(tmp_path: Path) -> None:
    with pytest.raises(TaskSpecError, match="no task cards"):
        load_cards(tmp_path)
    write(tmp_path, "b.toml", CARD)
    write(tmp_path, "a.toml", CARD.replace('"toy"', '"alpha"'))
    assert [spec.name for spec in load_cards(tmp_path)] == ["alpha", "toy"]
    write(tmp_path, "c.toml", CARD)
    with pytest.raises(TaskSpecError, match=r"task 'toy' is declared twice: in .*b\.toml and in .*c\.toml"):
        load_cards(tmp_path)


def test_card_fields_reach_the_task_spec(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path, CARD.replace("[data]", 'input_group = "g"\n\n[data]')))
    assert spec.name == "toy"
    assert spec.problem_type is ProblemType.SINGLE_LABEL
    assert spec.labels == ("neg", "pos")
    assert spec.text_fields == ("text",)
    assert spec.metrics == ("accuracy",)
    assert spec.splits == ("train", "dev")
    assert spec.label_column == "label"
    assert spec.input_group == "g"
    assert spec.description == "a toy task"


# --- loading files -----------------------------------------------------------------------------


def test_csv_card_loads_quoted_fields_and_maps_labels(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path))
    train = spec.loader("train", LoadContext())
    assert train.column_names == ["text", "label"]
    assert train["text"] == ["hello, world", "two\nlines", "plain"]
    assert train["label"] == [1, 0, 1]
    assert train.features["label"] == datasets.Value("int64")
    assert spec.loader("train", LoadContext()) is train  # cached in-process


def test_unknown_label_names_file_line_and_field_not_text(tmp_path: Path) -> None:
    train = 'text,label\n"a secret\nspanning lines",1\nanother secret,maybe\n'
    spec = load_card(toy(tmp_path, train=train))
    with pytest.raises(DataError) as err:
        spec.loader("train", LoadContext())
    message = str(err.value)
    assert re.match(r"\S*train\.csv: line 4: field 'label': ", message)
    assert "one of the labels: neg, pos" in message
    assert "secret" not in message and "maybe" not in message


def test_empty_label_is_an_error_unless_missing_label_is_set(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path, train="text,label\na,1\nb,\n"))
    with pytest.raises(DataError, match=r"train\.csv: line 3: field 'label': the label is empty"):
        spec.loader("train", LoadContext())
    allowed = CARD.replace('format = "csv"', 'format = "csv"\nmissing_label = ""')
    spec = load_card(write(tmp_path, "allowed.toml", allowed.replace('"toy"', '"allowed"')))
    assert spec.loader("train", LoadContext())["label"] == [1, MISSING_LABEL]


def test_tsv_without_header_reads_quotes_literally(tmp_path: Path) -> None:
    card = """\
    name = "tsvtask"
    problem_type = "regression"
    text_fields = ["a", "b"]
    metrics = ["pearson"]
    [data]
    format = "tsv"
    header = false
    columns = ["id", "a", "b", "score"]
    label_field = "score"
    [data.splits]
    train = "train.tsv"
    dev = "train.tsv"
    test = { path = "test.tsv", header = true }
    """
    write(tmp_path, "train.tsv", 'x\t"quoted\tplain\t1.5\ny\tNA\t\t0\n')
    write(tmp_path, "test.tsv", "id\ta\tb\nz\tc\td\n")
    spec = load_card(write(tmp_path, "tsvtask.toml", card))
    train = spec.loader("train", LoadContext())
    assert train.to_dict() == {"a": ['"quoted', "NA"], "b": ["plain", ""], "label": [1.5, 0.0]}
    assert train.features["label"] == datasets.Value("float32")
    test = spec.loader("test", LoadContext())
    assert test.column_names == ["a", "b"]
    write(tmp_path, "train.tsv", "x\ta\tb\tlots\n")
    with pytest.raises(DataError, match=r"train\.tsv: line 1: field 'score': value is not a number"):
        spec.loader("train", LoadContext())


def test_jsonl_multi_label_card(tmp_path: Path) -> None:
    card = """\
    name = "spine-like"
    problem_type = "multi_label_classification"
    labels = ["stenosis", "herniation", "bulge"]
    text_fields = ["snippet"]
    metrics = ["f1_micro"]
    [data]
    format = "jsonl"
    label_field = "findings"
    label_separator = ";"
    label_map = { disc_bulge = "bulge" }
    missing_label = "?"
    [data.splits]
    train = "data/train.jsonl"
    dev = "data/train.jsonl"
    """
    (tmp_path / "data").mkdir()
    rows = [
        '{"snippet": "L4-L5 ...", "findings": ["stenosis", "disc_bulge"], "id": 1}',
        '{"snippet": "L5-S1 ...", "findings": "herniation; bulge"}',
        '{"snippet": "C2-C3 ...", "findings": []}',
        '{"snippet": "C3-C4 ...", "findings": null}',
    ]
    write(tmp_path, "data/train.jsonl", "\n".join(rows) + "\n")
    spec = load_card(write(tmp_path, "spine.toml", card))
    train = spec.loader("train", LoadContext())
    assert train.column_names == ["snippet", "label"]
    assert train["label"] == [[1, 0, 1], [0, 1, 1], [0, 0, 0], [MISSING_LABEL] * 3]
    assert train.features["label"] == datasets.List(datasets.Value("int64"))
    write(tmp_path, "data/train.jsonl", "\n".join(rows[:3]) + '\n{"snippet": "x", "findings": ["cord"]}\n')
    with pytest.raises(DataError, match=r"train\.jsonl: line 4: field 'findings': value is not one of the labels"):
        spec.loader("train", LoadContext())


def test_data_root_order_and_missing_file_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cards, env_root, flag_root = tmp_path / "cards", tmp_path / "env", tmp_path / "flag"
    for folder in (cards, env_root, flag_root):
        folder.mkdir()
    card = CARD.replace('format = "csv"', 'format = "csv"\nroot_env = "TOY_DATA"')
    spec = load_card(write(cards, "toy.toml", card))
    with pytest.raises(DataError) as err:
        spec.loader("dev", LoadContext())
    message = str(err.value)
    for part in ("task 'toy'", "split 'dev'", str(cards / "dev.csv"), "--data DIR", "TOY_DATA"):
        assert part in message
    toy(env_root, dev="text,label\nfrom env,0\n")
    toy(flag_root, dev="text,label\nfrom flag,1\n")
    monkeypatch.setenv("TOY_DATA", str(env_root))
    assert spec.loader("dev", LoadContext())["text"] == ["from env"]
    assert spec.loader("dev", LoadContext(data_dir=flag_root))["text"] == ["from flag"]
    with pytest.raises(DataError, match=r"task 'toy' reads its files from a folder; --data .*dev\.csv is a file"):
        spec.loader("dev", LoadContext(data_dir=flag_root / "dev.csv"))


def test_split_columns_must_exist(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path, dev="text,other\nok,0\n"))
    with pytest.raises(DataError, match=r"dev\.csv: label column 'label' is missing; the 'dev' split must be labelled"):
        spec.loader("dev", LoadContext())
    spec = load_card(toy(tmp_path, train="words,label\nok,0\n"))
    with pytest.raises(DataError, match=r"train\.csv: column 'text' for text field 'text' is missing"):
        spec.loader("train", LoadContext())


def test_ragged_row_is_a_data_error(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path, train="text,label\na,1\nb,0,surplus\n"))
    with pytest.raises(DataError, match=r"train\.csv: line 3: 3 fields, the header names 2"):
        spec.loader("train", LoadContext())


def test_unknown_split_and_source(tmp_path: Path) -> None:
    spec = load_card(toy(tmp_path))
    with pytest.raises(DataError, match="task 'toy' has no split 'test'"):
        spec.loader("test", LoadContext())
    with pytest.raises(DataError, match="unknown data source 'web'"):
        spec.loader("train", LoadContext(options={"source": "web"}))
    with pytest.raises(DataError, match=r"no \[data.hub\] table"):
        spec.loader("train", LoadContext(options={"source": "hub"}))


def test_hub_source_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = """
    test = "test.csv"
    [data.hub]
    path = "org/toy"
    name = "cfg"
    splits = { train = "train", dev = "validation", test = "test" }
    rename = { sentence = "text" }
    """
    spec = load_card(toy(tmp_path, CARD + textwrap.dedent(hub)))
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["n", "p"])})
    calls = []

    def fake_load_dataset(path: str, name: str | None = None, split: str | None = None) -> datasets.Dataset:
        calls.append((path, name, split))
        labels = [-1, -1] if split == "test" else [1, -1]
        return datasets.Dataset.from_dict({"sentence": ["x", "y"], "label": labels}, features=features)

    assert spec.loader("train", LoadContext())["label"] == [1, 0, 1]  # files by default
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    dev = spec.loader("dev", LoadContext(options={"source": "hub"}))
    assert calls == [("org/toy", "cfg", "validation")]
    assert dev.to_dict() == {"text": ["x", "y"], "label": [1, MISSING_LABEL]}
    assert spec.loader("test", LoadContext(options={"source": "hub"})).column_names == ["text"]  # hidden labels


def test_regression_rejects_non_finite(tmp_path: Path) -> None:
    card = CARD.replace("single_label_classification", "regression").replace('labels = ["neg", "pos"]\n', "")
    card = card.replace('label_map = { "0" = "neg", "1" = "pos" }\n', "")
    spec = load_card(toy(tmp_path, card, train="text,label\na,0.5\nb,nan\n"))
    with pytest.raises(DataError, match=r"line 3: field 'label': value is not a finite number"):
        spec.loader("train", LoadContext())
    assert math.isclose(spec.loader("dev", LoadContext())["label"][0], 0.0)


# --- one text rule (UTF-8, a byte-order mark allowed) and line numbers -------------------------

BOM = b"\xef\xbb\xbf"
ROWS = {  # (header, good row, bad row) per format; the bad row's label is not one of the labels
    "csv": (b"text,label", b"a,neg", b"b,maybe"),
    "tsv": (b"text\tlabel", b"a\tneg", b"b\tmaybe"),
    "jsonl": (b"", b'{"text": "a", "label": "neg"}', b'{"text": "b", "label": "maybe"}'),
}


def format_card(folder: Path, fmt: str, train: bytes, header: bool = True) -> Path:
    """A card reading train.<fmt> (and dev.<fmt>, one good row); header = false names the columns."""
    head, good, _ = ROWS[fmt]
    (folder / f"train.{fmt}").write_bytes(train)
    (folder / f"dev.{fmt}").write_bytes((head + b"\n" if head and header else b"") + good + b"\n")
    columns = "" if header or fmt == "jsonl" else 'header = false\ncolumns = ["text", "label"]\n'
    card = CARD.replace('format = "csv"', f'format = "{fmt}"\n{columns}').replace(".csv", f".{fmt}")
    return write(folder, "toy.toml", card)


def lines(*rows: bytes, end: bytes = b"\n") -> bytes:
    return b"".join(row + end for row in rows)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
@pytest.mark.parametrize("header", [True, False])
def test_data_files_with_a_byte_order_mark_load(tmp_path: Path, fmt: str, header: bool) -> None:
    head, good, _ = ROWS[fmt]
    train = BOM + lines(*([head] if head and header else []), good, good)
    train_set = load_card(format_card(tmp_path, fmt, train, header)).loader("train", LoadContext())
    assert train_set.to_dict() == {"text": ["a", "a"], "label": [0, 0]}


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl"])
def test_data_file_that_is_not_utf8_names_file_and_line(tmp_path: Path, fmt: str) -> None:
    head, good, _ = ROWS[fmt]
    train = lines(*([head] if head else []), good, good.replace(b"a", b"\xe9"))  # Latin-1 "é"
    spec = load_card(format_card(tmp_path, fmt, train))
    line = 3 if head else 2
    with pytest.raises(DataError, match=rf"^\S*train\.{fmt}: line {line}: not UTF-8 text \(byte 0xe9\); save the file"):
        spec.loader("train", LoadContext())


def test_card_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = toy(tmp_path)
    path.write_bytes(BOM + path.read_bytes())
    assert load_card(path).name == "toy"


def test_card_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = toy(tmp_path, CARD.replace("a toy task", "une tâche"))
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(TaskSpecError, match=r"^\S*toy\.toml: line 2: not UTF-8 text \(byte 0xe2\)"):
        load_card(path)


SKIPPED = {  # lines the readers skip: blank and whitespace-only (in tsv a line holding a tab is a row)
    "blank": b"",
    "spaces": b"   ",
    "space-tab": b" \t ",
}


@pytest.mark.parametrize("end", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize(
    ("fmt", "skipped"), [(f, k) for f in ROWS for k in SKIPPED if not (f == "tsv" and k == "space-tab")]
)
def test_bad_row_after_a_skipped_line_names_its_own_line(tmp_path: Path, fmt: str, skipped: str, end: bytes) -> None:
    head, good, bad = ROWS[fmt]
    rows = [*([head] if head else []), good, SKIPPED[skipped], good, SKIPPED[skipped], bad]
    spec = load_card(format_card(tmp_path, fmt, lines(*rows, end=end)))
    with pytest.raises(DataError, match=rf"train\.{fmt}: line {len(rows)}: field 'label': value is not one of"):
        spec.loader("train", LoadContext())


def test_tsv_line_of_tabs_is_a_row_and_named(tmp_path: Path) -> None:
    spec = load_card(format_card(tmp_path, "tsv", lines(b"text\tlabel", b"a\tneg", b"   ", b" \t ")))
    with pytest.raises(DataError, match=r"train\.tsv: line 4: field 'label': the label is empty"):
        spec.loader("train", LoadContext())


def test_header_after_blank_lines_is_found(tmp_path: Path) -> None:
    spec = load_card(format_card(tmp_path, "csv", lines(b"  ", b"", b"text,label", b"a,neg", b"b,maybe")))
    with pytest.raises(DataError, match=r"train\.csv: line 5: field 'label'"):
        spec.loader("train", LoadContext())


def test_a_file_without_its_header_row_is_named_without_its_text(tmp_path: Path) -> None:
    """The first row of a file read as a header gives the column names: the message tells long ones by length."""
    text = "Patient CANARY-PHI-7731 has severe stenosis at C5-6"
    spec = load_card(toy(tmp_path, train=f'"{text}",1,a\n"two",0,b\n'))
    with pytest.raises(DataError) as info:
        spec.loader("train", LoadContext())
    message = str(info.value)
    assert f"column 'text' for text field 'text' is missing (columns: <{len(text)} characters>, 1, a)" in message
    assert "set 'data.header = false'" in message and "CANARY" not in message


def test_card_data_leaves_no_copy_in_the_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets builds its Arrow copy of the rows in a temporary folder, removed once they are in memory."""
    from harness.data.cardload import _load_file

    (tmp_path / "card").mkdir()
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    text = "Patient CANARY-PHI-7731 has severe stenosis"
    spec = load_card(toy(tmp_path / "card", train=f'text,label\n"{text}",1\nplain,0\n'))
    train = spec.loader("train", LoadContext())
    assert train["text"] == [text, "plain"] and train.cache_files == []
    _load_file.cache_clear()
    again = spec.loader("train", LoadContext())
    assert again is not train and again._fingerprint == train._fingerprint  # the tokenization cache's key
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "card" not in p.parts]
    assert [p for p in written if b"CANARY" in p.read_bytes()] == []


@pytest.mark.parametrize("path", ["../outside.csv", "sub/../../outside.csv", "{abs}", "link.csv"])
def test_a_split_path_cannot_leave_the_data_root_unless_allowed(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.csv"
    outside.write_text("text,label\nsecret,1\n", encoding="utf-8")
    (root / "link.csv").symlink_to(outside)
    (root / "sub").mkdir()
    path = path.replace("{abs}", str(outside))
    card = CARD.replace('train = "train.csv"', f"train = {json.dumps(path)}")
    spec = load_card(toy(root, card=card))
    with pytest.raises(DataError, match=r"'data.splits.train' .* outside the data root .*allow_outside_root=true"):
        spec.loader("train", LoadContext())
    assert spec.loader("train", LoadContext(options={"allow_outside_root": "true"}))["text"] == ["secret"]
    assert spec.loader("dev", LoadContext())["text"] == ["ok"]  # inside the root: as always
