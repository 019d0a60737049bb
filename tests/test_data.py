"""Streams, the tokenization cache and dynamic-padding batches."""

from __future__ import annotations

import math
import os

import datasets
import pytest
import torch

from harness.api import MISSING_LABEL, LoadContext, TaskSpec
from harness.data.streams import Collator, make_streams, stream_split, tokenize, tokenizer_fingerprint
from harness.errors import DataError
from harness.training.model import load_tokenizer

ROWS = {
    "text": ["mild stenosis", "a much longer report sentence about the disc", "normal"],
    "a": [0, 1, MISSING_LABEL],
    "b": [1, 1, 0],
    "score": [0.5, math.nan, 2.0],
}


def _task(name: str, column: str, group: str | None = "g", rows=ROWS, **kw) -> TaskSpec:
    kind = "regression" if column == "score" else "single_label_classification"
    labels = () if kind == "regression" else ("no", "yes")
    return TaskSpec(
        name,
        kind,
        ("text",),
        loader=lambda split, ctx: datasets.Dataset.from_dict(rows),
        metrics=("mse",) if labels == () else ("accuracy",),
        labels=labels,
        label_column=column,
        input_group=group,
        **kw,
    )


def test_streams_group_tasks_by_input_group():
    streams = make_streams([_task("t.a", "a"), _task("t.score", "score", group=None), _task("t.b", "b")])
    assert [s.task_names for s in streams] == [("t.a", "t.b"), ("t.score",)]


def test_stream_split_collects_every_task_label():
    stream = make_streams([_task("t.a", "a"), _task("t.b", "b")])[0]
    split = stream_split(stream, "train", LoadContext())
    assert split.column_names == ["text", "label_0", "label_1"]
    assert split["label_0"] == ROWS["a"] and split["label_1"] == ROWS["b"]


def test_group_members_with_different_rows_are_an_error():
    short = {k: v[:2] for k, v in ROWS.items()}
    stream = make_streams(
        [_task("t.a", "a"), _task("t.c", "missing_in_base", rows={**short, "missing_in_base": [0, 1]})]
    )[0]
    with pytest.raises(DataError, match="task 't.c' has 2 rows, 't.a' has 3"):
        stream_split(stream, "train", LoadContext())


def test_unlabelled_or_absent_test_split_gives_none_and_unlabelled_dev_is_an_error():
    no_labels = {"text": ROWS["text"]}
    unlabelled = make_streams([_task("t.a", "a", rows=no_labels, splits=("train", "dev", "test"))])[0]
    assert stream_split(unlabelled, "test", LoadContext()) is None
    assert stream_split(make_streams([_task("t.a", "a")])[0], "test", LoadContext()) is None  # not declared
    with pytest.raises(DataError, match="task 't.a' split 'dev': the loader returned no label column 'a'"):
        stream_split(unlabelled, "dev", LoadContext())


def test_seeded_slice_is_reproducible():
    rows = {"text": [f"row {i}" for i in range(50)], "a": [i % 2 for i in range(50)]}
    stream = make_streams([_task("t.a", "a", rows=rows)])[0]
    first = stream_split(stream, "train", LoadContext(seed=1), limit=10)
    assert len(first) == 10 and first["text"] == stream_split(stream, "train", LoadContext(seed=1), limit=10)["text"]
    assert first["text"] != stream_split(stream, "train", LoadContext(seed=2), limit=10)["text"]


def test_tokenizer_fingerprint_ignores_call_state():
    tokenizer = load_tokenizer("tiny")
    before = tokenizer_fingerprint(tokenizer)
    tokenizer(["some text"], truncation=True, max_length=16, padding="max_length")
    assert tokenizer_fingerprint(tokenizer) == before == tokenizer_fingerprint(load_tokenizer("tiny"))


def test_tokenized_split_is_cached_and_reused():
    stream = make_streams([_task("t.a", "a"), _task("t.b", "b")])[0]
    split = stream_split(stream, "train", LoadContext())
    first = tokenize(split, stream, load_tokenizer("tiny"), 32, show_progress=False)
    path = first.cache_files[0]["filename"]
    mtime = os.stat(path).st_mtime_ns
    again = tokenize(stream_split(stream, "train", LoadContext()), stream, load_tokenizer("tiny"), 32, False)
    assert again.cache_files[0]["filename"] == path and os.stat(path).st_mtime_ns == mtime
    assert "text" not in again.column_names  # no text beyond tokenization
    other = tokenize(split, stream, load_tokenizer("tiny"), 16, show_progress=False)
    assert other.cache_files[0]["filename"] != path


def test_collator_pads_dynamically_and_stacks_labels():
    tokenizer = load_tokenizer("tiny")
    streams = make_streams([_task("t.a", "a"), _task("t.score", "score", group=None)])
    rows = tokenize(stream_split(streams[0], "train", LoadContext()), streams[0], tokenizer, 64, False)
    batch = Collator(tokenizer, streams[0])([rows[0], rows[2]])
    longest = max(len(rows[0]["input_ids"]), len(rows[2]["input_ids"]))
    assert batch["input_ids"].shape == (2, longest)  # padded to the batch, not to max_length
    assert batch["labels"]["t.a"].tolist() == [0, MISSING_LABEL]
    reg = tokenize(stream_split(streams[1], "train", LoadContext()), streams[1], tokenizer, 64, False)
    labels = Collator(tokenizer, streams[1])([reg[i] for i in range(3)])["labels"]["t.score"]
    assert labels.dtype == torch.float32 and math.isnan(labels[1]) and labels[2] == 2.0


def test_tokenized_rows_serve_the_rows_and_batches_of_the_dataset():
    """In-memory rows equal the dataset's rows (a shuffled slice, labels of every kind) and collate alike."""
    from harness.data.streams import TokenizedRows
    from harness.training.runner import token_lengths

    n = 40
    rows = {
        "text": [f"row {i} " + "word " * (i % 7) for i in range(n)],
        "a": [i % 2 if i % 5 else MISSING_LABEL for i in range(n)],
        "score": [float(i) if i % 4 else math.nan for i in range(n)],
        "tags": [[i % 2, (i // 2) % 2] for i in range(n)],
    }
    tasks = [
        _task("t.a", "a", rows=rows),
        _task("t.score", "score", rows=rows),
        TaskSpec(
            "t.tags",
            "multi_label_classification",
            ("text",),
            loader=lambda split, ctx: datasets.Dataset.from_dict(rows),
            metrics=("f1_micro",),
            labels=("x", "y"),
            label_column="tags",
            input_group="g",
        ),
    ]
    stream = make_streams(tasks)[0]
    tokenizer = load_tokenizer("tiny")
    data = tokenize(stream_split(stream, "train", LoadContext()), stream, tokenizer, 32, False)
    data = data.shuffle(seed=3).select(range(5, 30))  # an indices mapping over the Arrow table
    held = TokenizedRows(data)
    assert len(held) == 25 and token_lengths(data) == [len(ids) for ids in data["input_ids"]]
    for i in (0, 7, 24, -1):
        mine, theirs = held[i], data[i % 25]
        assert set(mine) == set(theirs)
        assert all(list(mine[k]) == theirs[k] for k in ("input_ids", "attention_mask", "token_type_ids"))
        assert mine["label_0"] == theirs["label_0"] and mine["label_2"] == theirs["label_2"]
        assert mine["label_1"] == theirs["label_1"] or math.isnan(mine["label_1"]) and math.isnan(theirs["label_1"])
    with pytest.raises(IndexError):
        held[25]
    collate = Collator(tokenizer, stream)
    batch, expected = collate(held.__getitems__([3, 1, 20])), collate(data.__getitems__([3, 1, 20]))
    assert all(torch.equal(batch[k], expected[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    for name, labels in expected["labels"].items():
        got = batch["labels"][name]
        assert got.dtype == labels.dtype and torch.allclose(got.float(), labels.float(), equal_nan=True), name


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("model", ["tiny", "minilm"])
def test_collator_pads_exactly_as_the_tokenizer_does(side, model):
    """The collator's own padding equals ``tokenizer.pad``: values, dtype, width, padding side."""
    tokenizer = load_tokenizer(model)
    tokenizer.padding_side = side
    texts = ["mild stenosis", "a much longer report sentence about the disc at c5-c6", "", "normal"]
    encoded = tokenizer(texts, text_pair=["left", "right", "both sides", ""], truncation=True, max_length=64)
    rows = [{k: encoded[k][i] for k in encoded} for i in range(len(texts))]
    stream = make_streams([_task("t.a", "a")])[0]
    collator = Collator(tokenizer, stream)
    for subset in (rows, rows[2:3], [{k: r[k] for k in ("input_ids", "attention_mask")} for r in rows]):
        expected = tokenizer.pad(subset, return_tensors="pt")
        got = collator.pad(subset)
        assert set(got) == set(expected)
        for key, tensor in expected.items():
            assert got[key].dtype == tensor.dtype == torch.int64
            assert torch.equal(got[key], tensor), key
    no_mask = [{"input_ids": r["input_ids"]} for r in rows]  # the tokenizer adds an all-real mask
    assert torch.equal(
        collator.pad(no_mask)["attention_mask"], tokenizer.pad(no_mask, return_tensors="pt")["attention_mask"]
    )


def test_content_fingerprint_follows_the_data_not_its_location(tmp_path):
    """The data fingerprint the leaderboard compares: equal for a copy elsewhere, different after an edit
    (``datasets``' own fingerprint of a file hashes its path and modification time)."""
    import shutil

    from harness.api import LoadContext
    from harness.core.plugins import build_registries, new_manager
    from harness.data.streams import content_fingerprint, make_streams, stream_split
    from tests.conftest import GLUE_DIR

    task = build_registries(new_manager()).tasks.get("rte")
    shutil.copytree(GLUE_DIR / "RTE", tmp_path / "copy" / "RTE")
    shutil.copytree(GLUE_DIR / "RTE", tmp_path / "edited" / "RTE")
    train = tmp_path / "edited" / "RTE" / "train.tsv"
    lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace("\t", "\tX", 1)  # one character of the first example's text
    train.write_text("".join(lines), encoding="utf-8")

    def fingerprints(root):
        (stream,) = make_streams([task])
        ctx = LoadContext(data_dir=root, seed=0, profile="smoke")
        dataset = stream_split(stream, "train", ctx, 0)
        return content_fingerprint(dataset), dataset._fingerprint

    original, copy, edited = fingerprints(GLUE_DIR), fingerprints(tmp_path / "copy"), fingerprints(tmp_path / "edited")
    assert original[0] == copy[0] and original[1] != copy[1]  # same rows: same content fingerprint, another path
    assert edited[0] != original[0]


def _memory_mapped(dataset: datasets.Dataset) -> bool:
    """Every Arrow block of the dataset is read from a file (memory-mapped), none held in memory."""
    from datasets.table import ConcatenationTable, MemoryMappedTable

    table = dataset.data
    blocks = [b for row in table.blocks for b in row] if isinstance(table, ConcatenationTable) else [table]
    return all(isinstance(b, MemoryMappedTable) for b in blocks)


def test_tokenized_data_stays_arrow_backed_and_memory_mapped(toy_manager, monkeypatch):
    """The training and evaluation data are the tokenization cache's Arrow files, memory-mapped (also
    when a split is tokenized in several shards), not Python lists; batches are read row by row."""
    from harness.core.config import RunConfig
    from harness.core.plugins import build_registries
    from harness.data import streams
    from harness.protocol.execute import make_accelerator
    from harness.training.runner import prepare_data, token_lengths, train_loader

    monkeypatch.setattr(streams, "SHARD_ROWS", 50)  # toy train splits have 192 rows: 4 shards
    tasks = [entry.value for entry in build_registries(toy_manager).tasks]
    cfg = RunConfig(model="tiny", max_length=32)
    tokenizer = load_tokenizer("tiny")
    data = prepare_data(tasks, tokenizer, cfg, LoadContext(), make_accelerator(cfg))
    evaluation = [ds for pairs in data.eval.values() for _, ds in pairs]
    assert len(data.train) == 2 and len(evaluation) == 4  # the toy group and toy.score; dev and test
    for dataset in [*data.train, *evaluation]:
        assert _memory_mapped(dataset) and dataset.cache_files
        assert all(f["filename"].startswith(os.environ["HARNESS_CACHE"]) for f in dataset.cache_files)
    assert len(data.train[0].cache_files) == 4  # the shards, concatenated without a copy
    loader = train_loader(data.train[0], data.streams[0], tokenizer, cfg)
    assert loader.sampler.lengths == token_lengths(data.train[0]) == [len(r["input_ids"]) for r in data.train[0]]
    rows = loader.dataset  # TokenizedRows: numpy views of the memory-mapped Arrow buffers, no copy
    assert _memory_mapped(rows.dataset)
    for name, chunks in rows.tokens.items():
        arrow = rows.dataset.data.table.column(name).chunks  # the memory-mapped table's own chunks
        assert len(chunks) == len(arrow) == 4, name
        for (values, offsets), chunk in zip(chunks, arrow, strict=True):
            assert values.ctypes.data == chunk.values.buffers()[1].address + chunk.values.offset * values.itemsize
            assert offsets.ctypes.data == chunk.buffers()[1].address + chunk.offset * offsets.itemsize
    batch = rows.__getitems__([0, 60, 191, 120])  # rows of the first, second, last and third shard
    assert [list(r["input_ids"]) for r in batch] == [data.train[0][i]["input_ids"] for i in (0, 60, 191, 120)]


def test_content_fingerprint_hashes_the_arrow_stream_of_the_rows():
    """Streamed into the hash, the fingerprint is the one of the whole IPC stream written to a buffer
    (as before: job-store keys and leaderboard fingerprints stay valid)."""
    import hashlib
    import json

    import pyarrow as pa

    from harness.data.streams import content_fingerprint

    dataset = datasets.Dataset.from_dict(ROWS).select([2, 0])
    table = dataset.with_format("arrow")[:].replace_schema_metadata(None)  # rows 2 and 0; no datasets metadata
    assert table.column("text").to_pylist() == [ROWS["text"][2], ROWS["text"][0]]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    digest = hashlib.sha256(json.dumps(dataset.features.to_dict(), sort_keys=True).encode())
    digest.update(sink.getvalue())
    assert content_fingerprint(dataset) == digest.hexdigest()[:16]
