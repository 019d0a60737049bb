"""The GLUE plugin: its cards register through the plugin manager and load the real TSV files."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import csv  # noqa: E402
from pathlib import Path  # noqa: E402

import datasets  # noqa: E402
import pytest  # noqa: E402
from harness_glue.plugin import ROOT_ENV, cards_dir  # noqa: E402

from harness import LoadContext, TaskSpec  # noqa: E402
from harness.core.plugins import Registries, build_registries, new_manager  # noqa: E402
from harness.errors import DataError  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
GLUE = (REPO / ".." / "shared" / "data" / "glue").resolve()
ALL_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli"]
# task -> (folder, {split: (file, has header)}) for the files present in the shared data.
PRESENT = {
    "cola": ("CoLA", {"train": ("train.tsv", False), "dev": ("dev.tsv", False)}),
    "sst2": ("SST-2", {"train": ("train.tsv", True), "dev": ("dev.tsv", True)}),
    "stsb": ("STS-B", {"train": ("train.tsv", True), "dev": ("dev.tsv", True)}),
    "rte": ("RTE", {"train": ("train.tsv", True), "dev": ("dev.tsv", True)}),
    "wnli": ("WNLI", {"train": ("train.tsv", True), "dev": ("dev.tsv", True)}),
}
ABSENT = ["mnli", "mrpc", "qnli", "qqp"]
needs_data = pytest.mark.skipif(not GLUE.is_dir(), reason=f"GLUE data not found at {GLUE}")


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv(ROOT_ENV, str(GLUE))


@pytest.fixture(scope="module")
def registries() -> Registries:
    return build_registries(new_manager(load=["glue"], autoload=False))


def task(registries: Registries, name: str) -> TaskSpec:
    return registries.tasks.get(name)


def count_rows(path: Path, header: bool) -> int:
    """Rows of a GLUE TSV counted independently: quoting off, blank lines skipped, header removed."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = sum(1 for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row)
    return rows - int(header)


def test_every_card_registers_through_the_plugin_manager(registries: Registries) -> None:
    assert registries.tasks.by_plugin("glue") == ALL_TASKS
    assert cards_dir() == REPO / "tasks" / "glue"
    assert task(registries, "cola").metrics[0] == "matthews_correlation"
    assert task(registries, "stsb").labels == ()
    assert task(registries, "mnli").labels == ("entailment", "neutral", "contradiction")
    assert all(task(registries, name).splits == ("train", "dev") for name in ALL_TASKS)


@needs_data
@pytest.mark.parametrize("name", sorted(PRESENT))
def test_row_counts_and_labels_match_the_files(registries: Registries, name: str) -> None:
    spec = task(registries, name)
    folder, splits = PRESENT[name]
    for split, (file, header) in splits.items():
        ds = spec.loader(split, LoadContext())
        assert ds.num_rows == count_rows(GLUE / folder / file, header), (name, split)
        assert ds.column_names == [*spec.text_fields, "label"]
        assert all(isinstance(text, str) for field in spec.text_fields for text in ds[field][:])
        labels = ds["label"][:]
        if spec.labels:
            assert ds.features["label"] == datasets.Value("int64")
            assert set(labels) == set(range(len(spec.labels)))
        else:
            assert ds.features["label"] == datasets.Value("float32")
            assert 0.0 <= min(labels) and max(labels) <= 5.0


@needs_data
def test_stsb_train_has_every_row(registries: Registries) -> None:
    # Reading with quoting on merges rows that contain a lone double quote.
    assert task(registries, "stsb").loader("train", LoadContext()).num_rows == 5749


@pytest.mark.parametrize("name", ABSENT)
def test_absent_tasks_say_where_their_files_should_be(registries: Registries, name: str) -> None:
    with pytest.raises(DataError, match=rf"data for task '{name}' not found: split 'train' expects .*{ROOT_ENV}"):
        task(registries, name).loader("train", LoadContext())


def test_no_data_root_is_a_clear_error(registries: Registries, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ROOT_ENV)
    message = f"GLUE data not found for task 'cola': pass --data DIR or set {ROOT_ENV}"
    with pytest.raises(DataError, match=message):
        task(registries, "cola").loader("train", LoadContext())


# Standard GLUE layouts of the tasks not in the shared data: folder, header, label column, raw labels.
LAYOUTS = {
    "mrpc": ("MRPC", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], "Quality", ["0", "1"]),
    "qqp": ("QQP", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], "is_duplicate", ["0", "1"]),
    "qnli": ("QNLI", ["index", "question", "sentence", "label"], "label", ["entailment", "not_entailment"]),
    "mnli": (
        "MNLI",
        ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse"]
        + ["sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"],
        "gold_label",
        ["entailment", "neutral", "contradiction"],
    ),
}
TEXT_COLUMNS = {
    "mrpc": ("#1 String", "#2 String"),
    "qqp": ("question1", "question2"),
    "qnli": ("question", "sentence"),
    "mnli": ("sentence1", "sentence2"),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_absent_cards_fit_the_standard_layout(registries: Registries, tmp_path: Path, name: str) -> None:
    folder, header, label_column, raw_labels = LAYOUTS[name]
    rows = ["\t".join(header)]
    for i, raw in enumerate(raw_labels):
        rows.append("\t".join(raw if column == label_column else f"{column} {i}" for column in header))
    (tmp_path / folder).mkdir()
    for file in ("train.tsv", "dev_matched.tsv" if name == "mnli" else "dev.tsv"):
        (tmp_path / folder / file).write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = task(registries, name)
    ds = spec.loader("dev", LoadContext(data_dir=tmp_path))
    assert ds.column_names == [*spec.text_fields, "label"]
    assert ds["label"][:] == list(range(len(raw_labels)))
    for field, column in zip(spec.text_fields, TEXT_COLUMNS[name], strict=True):
        assert ds[field][:] == [f"{column} {i}" for i in range(len(raw_labels))]
