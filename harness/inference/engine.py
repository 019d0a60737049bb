"""One saved model over a stream of input records: records -> units -> batches -> heads -> predictions.

The model's heads are grouped by what they read (input reader and text fields): heads of one
group share every encoder pass, as in training (one pass per spine snippet serves every
pathology head of its region). Records are taken ``CHUNK_RECORDS`` at a time: each record is
turned into units by the group's ``InputReader`` (a spine report into one snippet per level);
a chunk's units are sorted by length, cut into batches of ``batch_size``, tokenized as in
training (truncated to ``max_length``, padded to the batch's longest: input_ids [B, L]), run
through the encoder once per batch (pooled [B, hidden]) and each head of the group (logits
[B, outputs]); the predictions are then given back in input order. Only one chunk's units and
one batch's tensors are held at a time, so memory does not grow with the input.

Decisions are the evaluation's: single-label, the argmax of the logits (``score`` = its softmax
probability); multi-label, every label whose sigmoid probability exceeds the saved threshold
(0.5 unless tuned on dev); regression, the head's output (``score``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.core.registry import Registry
from harness.errors import DataError, PluginError, RegistryError, RunError
from harness.inference.records import Record
from harness.training.saved import HeadInfo, LoadedModel, ModelInfo

CHUNK_RECORDS = 256  # records read before a chunk's units are run through the model
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DECIMALS = 6  # probabilities and classification scores are rounded to this many decimals


@dataclass(frozen=True)
class InputGroup:
    """Heads of one model that read the same units, and the reader that makes those units."""

    reader: Any  # harness.api.InputReader, as registered (its fn guarded)
    text_fields: tuple[str, ...]
    heads: tuple[HeadInfo, ...]

    @property
    def tasks(self) -> list[str]:
        return [h.task for h in self.heads]


def input_groups(info: ModelInfo, readers: Registry[Any]) -> list[InputGroup]:
    """The model's heads grouped by (input reader, text fields), in head order; ``RunError`` when
    a reader is not registered by a loaded plugin (with the known ones and a did-you-mean)."""
    grouped: dict[tuple[str, tuple[str, ...]], list[HeadInfo]] = {}
    for head in info.heads:
        grouped.setdefault((head.input_reader, tuple(head.text_fields)), []).append(head)
    groups = []
    for (name, fields), heads in grouped.items():
        try:
            reader = readers.get(name)
        except RegistryError as exc:
            raise RunError(
                f"task {heads[0].task!r} of job {info.job} reads its inputs with {exc}; load the plugin that "
                "registers it (installed, or --plugin NAME)"
            ) from None
        groups.append(InputGroup(reader, fields, tuple(heads)))
    return groups


@dataclass(frozen=True)
class Prediction:
    """One head's prediction for one unit of one input record."""

    line: int  # the input line the record starts on (1-based)
    id: str | None  # the record's id field (the reader's ``id_field``), if it has one
    unit_column: str  # the reader's name for units ("level"), "" when a record is one unit
    unit: str  # the unit within the record ("C5-C6"), "" when a record is one unit
    task: str
    label: str | list[str] | None  # class name; multi-label: the predicted names; regression: None
    score: float | None  # single-label: the label's probability; regression: the value; multi-label: None
    probabilities: dict[str, float] | None  # per label name (softmax or sigmoid); regression: None
    texts: dict[str, str] = field(default_factory=dict)  # text field -> the unit's text (only when echoed)


@dataclass
class Counts:
    """What one model made of the input: records read, skipped (not for it), without units, units classified."""

    records: int = 0
    skipped: int = 0  # records no group of the model reads (the readers returned None)
    skipped_lines: list[int] = field(default_factory=list)  # the first few of them
    empty: int = 0  # records read that gave no unit (a report in which no level is found)
    empty_lines: list[int] = field(default_factory=list)  # the first few of them (never ids: they are input values)
    units: int = 0
    predictions: int = 0


@dataclass(frozen=True)
class _Unit:
    line: int
    id: str | None
    group: int
    name: str
    texts: tuple[str, ...]


def predict(
    loaded: LoadedModel,
    groups: Sequence[InputGroup],
    records: Iterable[Record],
    *,
    where: str,
    batch_size: int = 64,
    echo: bool = False,
    counts: Counts | None = None,
) -> Iterator[Prediction]:
    """Predictions of every head for every unit of ``records``, in input order (record, group,
    unit, head). ``where`` (the input file) prefixes a record's error; ``counts`` is filled in."""
    counts = counts if counts is not None else Counts()
    records = iter(records)
    while chunk := list(itertools.islice(records, CHUNK_RECORDS)):
        units = [u for line, record in chunk for u in _units(line, record, groups, where, counts)]
        counts.units += len(units)
        for unit, outputs in zip(units, _outputs(loaded, groups, units, batch_size), strict=True):
            group = groups[unit.group]
            texts = dict(zip(group.text_fields, unit.texts, strict=True)) if echo else {}
            for head in group.heads:
                label, score, probabilities = decide(head, outputs[head.task])
                counts.predictions += 1
                yield Prediction(
                    unit.line, unit.id, group.reader.unit, unit.name, head.task, label, score, probabilities, texts
                )


def _units(line: int, record: dict[str, Any], groups: Sequence[InputGroup], where: str, counts: Counts) -> list[_Unit]:
    counts.records += 1
    units: list[_Unit] = []
    read = False
    for index, group in enumerate(groups):
        try:
            found = group.reader.fn(record, group.text_fields)
        except DataError as exc:
            raise DataError(f"{where}: line {line}: {exc}") from None
        if found is None:
            continue
        read = True
        ident = record.get(group.reader.id_field)
        ident = None if ident is None else str(ident)
        units += [_Unit(line, ident, index, name, texts) for name, texts in _checked(found, group)]
    if not read:
        counts.skipped += 1
        if len(counts.skipped_lines) < 5:
            counts.skipped_lines.append(line)
    elif not units:
        counts.empty += 1
        if len(counts.empty_lines) < 5:
            counts.empty_lines.append(line)
    return units


def _checked(found: Any, group: InputGroup) -> list[tuple[str, tuple[str, ...]]]:
    """The reader's units, checked: a list of (name, one text per text field)."""
    width = len(group.text_fields)
    ok = isinstance(found, list) and all(
        isinstance(u, tuple)
        and len(u) == 2
        and isinstance(u[0], str)
        and isinstance(u[1], tuple)
        and len(u[1]) == width
        and all(isinstance(t, str) for t in u[1])
        for u in found
    )
    if not ok:
        raise PluginError(
            f"input reader {group.reader.name!r} returned {type(found).__name__}; it must return None or a list of "
            f"(unit name, tuple of {width} text(s))"
        )
    return list(found)


def _outputs(
    loaded: LoadedModel, groups: Sequence[InputGroup], units: Sequence[_Unit], batch_size: int
) -> list[dict[str, np.ndarray]]:
    """Per unit, each head of its group's raw outputs [outputs] (float32): one encoder pass per batch."""
    out: list[dict[str, np.ndarray]] = [{} for _ in units]
    for index, group in enumerate(groups):
        mine = sorted(
            (i for i, u in enumerate(units) if u.group == index), key=lambda i: sum(map(len, units[i].texts))
        )  # similar lengths together: less padding
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            logits = head_logits(loaded, [units[i].texts for i in batch], group.tasks)
            for row, i in enumerate(batch):
                out[i] = {task: values[row] for task, values in logits.items()}
    return out


def head_logits(loaded: LoadedModel, texts: Sequence[tuple[str, ...]], tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """One encoder pass over a batch of B units: per task its logits [B, outputs] (float32 numpy).

    ``texts``: per unit one string per text field (a pair is encoded as a pair, as in training);
    a very long text is cut first (``capped``), which changes no token the model sees.
    """
    import torch

    model, tokenizer, info = loaded.model, loaded.tokenizer, loaded.info
    texts = [capped(tokenizer, unit, info.max_length) for unit in texts]
    columns = [list(column) for column in zip(*texts, strict=True)]
    encoded = tokenizer(*columns, truncation=True, max_length=info.max_length, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    inputs = {k: encoded[k].to(device) for k in MODEL_INPUTS if k in encoded}  # input_ids etc. [B, L]
    with torch.inference_mode():
        logits = model(tasks=list(tasks), **inputs)  # task -> [B, outputs]
    return {task: value.float().cpu().numpy() for task, value in logits.items()}


CHARS_PER_TOKEN = 64  # a text longer than max_length * this is tokenized from a prefix (``capped``)
SPACES = " \t\n\r"  # whitespace to every tokenizer: a word never spans it


def capped(tokenizer: Any, texts: tuple[str, ...], max_length: int) -> tuple[str, ...]:
    """One unit's texts with any text longer than ``max_length * CHARS_PER_TOKEN`` characters cut
    to a prefix, when that gives exactly the tokens truncation to ``max_length`` keeps of the whole
    text; else the texts as they are. Tokenizing a 30 MB text in full, only to keep its first
    ``max_length`` tokens, takes gigabytes.

    The prefix ends at a word, before whitespace, at most that many characters in; it is used
    when it already holds at least ``max_length`` tokens, so that the truncated encoding is the
    same (for tokenizers that split words at whitespace before their model: WordPiece, BPE and
    SentencePiece with Metaspace, as every Hugging Face encoder the harness uses). A pair is cut
    only when one text is long and the other shorter than ``max_length`` tokens: which text
    longest-first truncation shortens, and by how much, then depends on the short one alone. When
    no prefix qualifies (no whitespace in it, fewer tokens, both texts of a pair long) the whole
    text is tokenized.
    """
    limit = max_length * CHARS_PER_TOKEN
    long = [i for i, text in enumerate(texts) if len(text) > limit]
    if not long or len(long) > 1:
        return texts
    (index,) = long
    prefix = _word_prefix(texts[index], limit)
    if prefix is None:
        return texts
    others = [t for i, t in enumerate(texts) if i != index]

    def tokens(text: str) -> int:  # at most max_length: no long-sequence warning, no long encoding
        return len(tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"])

    if tokens(prefix) < max_length or any(tokens(other) >= max_length for other in others):
        return texts
    return tuple(prefix if i == index else t for i, t in enumerate(texts))


def _word_prefix(text: str, limit: int) -> str | None:
    """``text`` up to the last word ending before whitespace within its first ``limit + 1``
    characters (trailing whitespace dropped); None when there is no such word."""
    cut = max(text.rfind(space, 0, limit + 1) for space in SPACES)
    prefix = text[:cut].rstrip(SPACES) if cut > 0 else ""
    return prefix or None


def decide(head: HeadInfo, logits: np.ndarray) -> tuple[str | list[str] | None, float | None, dict[str, float] | None]:
    """(label, score, probabilities) of one unit from its raw head outputs [outputs]."""
    from harness.training.thresholds import sigmoid

    if head.problem_type == "regression":
        return None, float(logits[0]), None
    if head.problem_type == "multi_label_classification":
        probs = sigmoid(logits)
        thresholds = np.asarray(head.thresholds if head.thresholds is not None else [0.5] * len(head.labels))
        chosen = [name for name, p, t in zip(head.labels, probs, thresholds, strict=True) if p > t]
        return chosen, None, _rounded(head.labels, probs)
    shifted = np.exp(np.asarray(logits, dtype=np.float64) - float(np.max(logits)))
    probs = shifted / shifted.sum()
    best = int(np.argmax(logits))  # the evaluation's decision: argmax of the logits
    return head.labels[best], round(float(probs[best]), DECIMALS), _rounded(head.labels, probs)


def _rounded(labels: Sequence[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), DECIMALS) for name, p in zip(labels, probs, strict=True)}
