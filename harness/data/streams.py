"""Input streams, tokenization with a fingerprinted on-disk cache, and dynamic-padding batches.

A *stream* is a set of tasks that label the same inputs (one ``input_group``), or a single
task. Each stream is one dataset with one label column per task (``label_<k>``), so a batch
runs the encoder once for every task in it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api import MISSING_LABEL, LoadContext, ProblemType, TaskSpec
from harness.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets
    import torch

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
log = logging.getLogger("harness")


@dataclass(frozen=True)
class Stream:
    key: str  # the input group, or the task name for a task on its own inputs
    tasks: tuple[TaskSpec, ...]

    @property
    def text_fields(self) -> tuple[str, ...]:
        return self.tasks[0].text_fields

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)


def make_streams(tasks: Sequence[TaskSpec]) -> list[Stream]:
    """Group tasks by ``input_group`` (first-seen order); tasks without one stand alone."""
    groups: dict[str, list[TaskSpec]] = {}
    for task in tasks:
        groups.setdefault(task.input_group or f"task:{task.name}", []).append(task)
    streams = [Stream(key, tuple(members)) for key, members in groups.items()]
    for stream in streams:
        if len({t.text_fields for t in stream.tasks}) != 1:
            raise DataError(
                f"tasks in input_group {stream.key!r} declare different text_fields; they must share inputs"
            )
    return streams


def cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE", Path.home() / ".cache" / "harness"))


def load_split(task: TaskSpec, split: str, ctx: LoadContext) -> datasets.Dataset:
    """A task's split from its loader, checked for the declared columns."""
    dataset = task.loader(split, ctx)
    missing = [f for f in task.text_fields if f not in dataset.column_names]
    if missing:
        raise DataError(f"task {task.name!r} split {split!r}: loader returned no column(s) {missing}")
    return dataset


def stream_split(stream: Stream, split: str, ctx: LoadContext, limit: int = 0) -> datasets.Dataset | None:
    """The stream's split: its text fields and one ``label_<k>`` column per task (k in stream order).

    Every task's labels come from its own loader (``task.loader(split, ctx)[task.label_column]``);
    tasks of one ``input_group`` must return the same rows in the same order (same count, same
    text), else ``DataError`` names the two tasks and the first differing row. Label values are
    checked against the task's problem type. ``train`` and ``dev`` must be labelled for every
    task; for ``test``, a task that does not declare it or whose loader returns no label column
    gets an all-missing column (it is reported on dev). Returns None when no task of the stream
    labels the split.

    ``limit`` > 0 keeps a seeded random slice of that many rows (``ctx.seed``), the same rows
    for every task of the stream and for any subset of its tasks.
    """
    sources = {t.name: load_split(t, split, ctx) for t in stream.tasks if split in t.splits}
    labelled = [t for t in stream.tasks if t.name in sources and t.label_column in sources[t.name].column_names]
    if split in ("train", "dev"):
        for task in stream.tasks:
            if task not in labelled:
                raise DataError(
                    f"task {task.name!r} split {split!r}: the loader returned no label column "
                    f"{task.label_column!r}; the train and dev splits must be labelled"
                )
    if not labelled:
        return None  # an unlabelled split (e.g. GLUE test)
    first = labelled[0]
    base = sources[first.name]
    for task in labelled[1:]:
        _check_same_rows(stream, split, first, base, task, sources[task.name])
    dataset = base.select_columns(list(stream.text_fields))
    for k, task in enumerate(stream.tasks):
        if task in labelled:
            values = sources[task.name][task.label_column]
            check_labels(task, values, split)
        else:
            values = [missing_label(task)] * len(base)
        dataset = dataset.add_column(f"label_{k}", values)
    if 0 < limit < len(dataset):
        dataset = dataset.shuffle(seed=ctx.seed).select(range(limit)).flatten_indices()
    return dataset


def _check_same_rows(
    stream: Stream, split: str, first: TaskSpec, base: datasets.Dataset, task: TaskSpec, other: datasets.Dataset
) -> None:
    """Tasks of one input group label the same rows: same count, same text, same order."""
    where = f"input_group {stream.key!r} split {split!r}"
    if len(other) != len(base):
        raise DataError(
            f"{where}: task {task.name!r} has {len(other)} rows, {first.name!r} has {len(base)}; "
            "tasks in one group must label the same rows"
        )
    if other is base or other._fingerprint == base._fingerprint:
        return
    import pyarrow.compute as pc

    for field in stream.text_fields:  # compared in Arrow: the texts never become Python strings
        mine, theirs = other.with_format("arrow")[field], base.with_format("arrow")[field]
        if not mine.equals(theirs):
            differs = pc.fill_null(pc.not_equal(mine, theirs), True)  # a missing text on one side differs too
            row = max(pc.index(differs, True).as_py(), 0)
            raise DataError(
                f"{where}: task {task.name!r} row {row} has other {field!r} text than task {first.name!r}; "
                "tasks in one group must label the same rows in the same order"
            )


def missing_label(task: TaskSpec) -> Any:
    """The label value meaning "not annotated" for the task's problem type."""
    if task.problem_type is ProblemType.REGRESSION:
        return math.nan
    if task.problem_type is ProblemType.MULTI_LABEL:
        return [MISSING_LABEL] * len(task.labels)
    return MISSING_LABEL


def is_labelled(task: TaskSpec, values: Any) -> np.ndarray:
    """[rows] boolean mask of the annotated rows of a label column (a list or an array of references)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    if task.problem_type is ProblemType.REGRESSION:
        return ~np.isnan(np.asarray(values, dtype=float))  # None becomes NaN
    return (np.asarray(values) != MISSING_LABEL).reshape(len(values), -1).all(axis=1)


def check_labels(task: TaskSpec, values: Sequence[Any], split: str) -> None:
    """Raise ``DataError`` (task, split, row) for a label the task's head cannot take."""
    where = f"task {task.name!r} split {split!r}"
    n = len(task.labels)
    for row, value in enumerate(values):
        if task.problem_type is ProblemType.REGRESSION:
            ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
            expected = "a number (NaN or None when not annotated)"
        elif task.problem_type is ProblemType.MULTI_LABEL:
            ok = (
                isinstance(value, list | tuple)
                and len(value) == n
                and (all(x in (0, 1) for x in value) or all(x == MISSING_LABEL for x in value))
            )
            expected = f"a list of {n} values 0/1 (all {MISSING_LABEL} when not annotated)"
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and (0 <= value < n or value == MISSING_LABEL)
            expected = f"a class index 0..{n - 1} ({MISSING_LABEL} when not annotated)"
        if not ok:
            raise DataError(
                f"{where}: row {row} of label column {task.label_column!r} is not {expected}; fix the task's loader"
            )


def content_fingerprint(dataset: datasets.Dataset) -> str:
    """sha256 (first 16 hex digits) of a dataset's schema and every row, in order.

    ``datasets``' own fingerprint of a table read from files hashes their paths and modification
    times, so the same data in another folder, or a fresh copy of it, gets another one. This
    hashes the Arrow IPC stream of the rows the dataset selects (a slice's indices applied):
    equal data gives an equal fingerprint wherever it lives, and any edit changes it. Linear in
    the data's size (hashlib over the Arrow buffers); the stream is hashed as it is written, so a
    memory-mapped dataset is not copied into memory.
    """
    import pyarrow as pa

    table = dataset.with_format("arrow")[:]
    table = table.replace_schema_metadata(None)  # datasets stores its own (path-based) fingerprint there
    digest = hashlib.sha256(json.dumps(dataset.features.to_dict(), sort_keys=True).encode())
    with pa.PythonFile(_HashSink(digest), mode="w") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return digest.hexdigest()[:16]


class _HashSink:
    """A write-only file object that feeds what is written to a hashlib digest."""

    def __init__(self, digest: Any) -> None:
        self.digest = digest
        self.closed = False

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of the vocabulary and pipeline, without the per-call truncation/padding state."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        text = repr(sorted(tokenizer.get_vocab().items()))
    else:  # calling the tokenizer with truncation=True changes to_str(): leave that out
        state = json.loads(backend.to_str())
        text = json.dumps({k: v for k, v in state.items() if k not in ("truncation", "padding")}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SHARD_ROWS = 4096  # rows per tokenization shard: the unit of the progress bar and of the cache files


def tokenize(
    dataset: datasets.Dataset, stream: Stream, tokenizer: Any, max_length: int, show_progress: bool = True
) -> datasets.Dataset:
    """Tokenize once per (data, tokenizer, max_length); later runs and processes reuse the files.

    Text columns are dropped: no text goes beyond this point.
    """
    import datasets

    from harness.training.progress import track

    fields = stream.text_fields
    key = hashlib.sha256(
        f"{dataset._fingerprint}|{tokenizer_fingerprint(tokenizer)}|{max_length}|{fields}".encode()
    ).hexdigest()[:24]
    folder = cache_dir() / "tokenized" / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cache folder {folder} cannot be created ({exc.strerror or exc}); point HARNESS_CACHE at a writable folder"
        ) from None

    def encode(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(*[batch[f] for f in fields], truncation=True, max_length=max_length)

    def shard(i: int, shards: int) -> datasets.Dataset:
        file = folder / f"{i:05d}-of-{shards:05d}.arrow"
        part = dataset.shard(shards, i, contiguous=True)
        options = {"batched": True, "remove_columns": list(fields), "new_fingerprint": f"{key}-{i}"}
        if not file.exists():
            return part.map(encode, cache_file_name=str(file), **options)
        try:
            return part.map(encode, cache_file_name=str(file), load_from_cache_file=True, **options)
        except Exception:  # noqa: BLE001 -- a damaged cache file (a killed write, a full disk): rebuild it
            log.warning("tokenization cache file %s is damaged; rebuilding it", file)
            file.unlink(missing_ok=True)
            return part.map(encode, cache_file_name=str(file), load_from_cache_file=False, **options)

    shards = max(1, math.ceil(len(dataset) / SHARD_ROWS))
    with _cache_lock(folder, stream.key):
        parts = [
            shard(i, shards) for i in track(range(shards), description=f"tokenize {stream.key}", enabled=show_progress)
        ]
    return parts[0] if shards == 1 else datasets.concatenate_datasets(parts)


CACHE_LOCK = ".lock"  # in a tokenization cache folder: held while a process writes or reads its files


@contextlib.contextmanager
def _cache_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder``'s lock: one process tokenizes a split, the others wait and then read its files.

    ``datasets`` writes each file to a temporary name and renames it into place, so a reader never
    sees half a file; the lock keeps a second process from writing the same files again, or from
    deleting a file as damaged while another is writing it. Temporary files left in the folder by
    a killed writer (no live writer can hold one: it holds the lock) are removed here.
    """
    from filelock import Timeout

    from harness.core.shared import shared_lock

    lock = shared_lock(folder / CACHE_LOCK)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("tokenize %s: another process is tokenizing it (lock %s); waiting for it", what, lock.lock_file)
        lock.acquire()
    try:
        for stale in folder.glob("tmp*"):  # datasets' NamedTemporaryFile names: a dead writer's
            stale.unlink(missing_ok=True)
        yield
    finally:
        lock.release()


class TokenizedRows:
    """A tokenized split as numpy views of its Arrow buffers, indexed by a DataLoader like the ``datasets.Dataset``.

    ``datasets.Dataset.__getitems__`` converts every batch from Arrow and builds one dict per row
    (~1.3 ms per 32-row batch here, some 3 % of a tiny-model training step). This takes each
    model input's Arrow chunks once as two numpy arrays, the flat token values and the row
    offsets, *without copying*: for a dataset read from the tokenization cache they are views of
    the memory-mapped file (the token lists never become Python objects; a slice or shuffle of
    the dataset, an indices mapping, is taken with one Arrow ``take``, in memory). A row is the
    dict a ``Dataset`` row is, with numpy views (int32/int8 as Arrow stores them) for the token
    lists; ``Collator`` pads either. The label columns (one value, or a list for multi-label,
    per row and task) are read as Python lists: a few small objects per row.
    """

    def __init__(self, dataset: datasets.Dataset):
        self.dataset = dataset  # holds the memory maps the views point into
        table = dataset.with_format("arrow")[:]  # zero-copy slices of the file; a take where there are indices
        self.rows = len(table)
        self.tokens: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # input -> per chunk (values, offsets)
        self.labels: dict[str, list[Any]] = {}
        for name in table.column_names:
            column = table.column(name)
            if name in MODEL_INPUTS:
                self.tokens[name] = [_list_views(chunk) for chunk in column.chunks]
            else:
                self.labels[name] = column.to_pylist()
        sizes = [len(chunk) for chunk in table.column(table.column_names[0]).chunks] if table.num_columns else []
        self.starts = np.cumsum([0, *sizes])[:-1]  # the first row of each chunk

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        out = []
        for i in indices:
            if not -self.rows <= i < self.rows:
                raise IndexError(f"row {i} of {self.rows}")
            i %= self.rows
            c = int(np.searchsorted(self.starts, i, side="right")) - 1
            j = i - int(self.starts[c])
            row: dict[str, Any] = {}
            for name, chunks in self.tokens.items():
                values, offsets = chunks[c]
                row[name] = values[offsets[j] : offsets[j + 1]]
            row.update((k, v[i]) for k, v in self.labels.items())
            out.append(row)
        return out


def _list_views(chunk: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of an Arrow list array as numpy arrays over its own buffers (no copy).

    ``offsets`` ([len(chunk) + 1]) index into ``values``, the whole child array: pyarrow's
    ``ListArray.offsets`` already account for a sliced chunk's offset. Falls back to a copy for a
    child with nulls (a tokenizer writes none).
    """
    offsets = chunk.offsets.to_numpy(zero_copy_only=True)
    try:
        values = chunk.values.to_numpy(zero_copy_only=True)
    except Exception:  # noqa: BLE001 -- pyarrow raises ArrowInvalid for nulls: copy instead
        values = chunk.values.to_numpy(zero_copy_only=False)
    return values, offsets


class Collator:
    """Pads model inputs to the batch's longest row (dynamic padding) and stacks each task's labels.

    The padding equals ``tokenizer.pad(rows, return_tensors="pt")`` (the tokenizer's
    ``padding_side``, ``pad_token_id``, ``pad_token_type_id``, attention mask 0; int64 tensors
    [rows, longest]) but is written into one preallocated array per input: ``tokenizer.pad``
    builds a padded Python list per row and field first, a cost of ~2 ms per 32-row batch here,
    about 5 % of a tiny-model training step.
    """

    def __init__(self, tokenizer: Any, stream: Stream):
        self.tokenizer = tokenizer
        self.stream = stream
        self.left = getattr(tokenizer, "padding_side", "right") == "left"
        self.pad_values = {
            "input_ids": tokenizer.pad_token_id,
            "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0),
            "attention_mask": 0,
        }
        self.wants_mask = "attention_mask" in getattr(tokenizer, "model_input_names", ["attention_mask"])

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = dict(self.pad([{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows]))
        labels = {}
        for k, task in enumerate(self.stream.tasks):
            values = [r[f"label_{k}"] for r in rows]
            if task.problem_type is ProblemType.REGRESSION:
                labels[task.name] = torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float32)
            else:
                labels[task.name] = torch.tensor(values, dtype=torch.long)
        batch["labels"] = labels
        return batch

    def pad(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """``{input: int64 tensor [rows, longest]}`` for the model inputs of ``rows`` (lists of ints)."""
        import torch

        lengths = [len(r["input_ids"]) for r in rows]
        width = max(lengths, default=0)
        keys = [k for k in MODEL_INPUTS if rows and k in rows[0]]
        if self.wants_mask and "attention_mask" not in keys:
            keys.append("attention_mask")
        out = {}
        for key in keys:
            array = np.full((len(rows), width), self.pad_values[key], dtype=np.int64)
            for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
                values = row[key] if key in row else 1  # no attention mask given: every token is real
                if self.left:
                    array[i, width - n :] = values
                else:
                    array[i, :n] = values
            out[key] = torch.from_numpy(array)
        return out


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(model inputs, labels per task)."""
    labels = batch["labels"]
    return {k: v for k, v in batch.items() if k != "labels"}, labels
