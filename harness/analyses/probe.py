"""The probe set: fixed, seeded dev rows on which every model of a run is measured.

CKA compares the STL models of tasks i and j on the *same* examples, and gradient alignment
and TAG compare tasks on the *same* fixed batches, so the probe set is drawn once per run from
the **dev** split of every input stream of the selected tasks, with its own seed (the run's
data seed, not a training seed): every job of the run, whatever its training seed, sees the
same rows in the same order.

A ``ProbeSet`` holds token tensors, labels and row ids (``"<stream key>/<row index in the dev
split>"``) only: the text is dropped at tokenization and never reaches it, so nothing written
from a probe set (features, gradients, matrices, row ids) contains report text. The tensors
live in memory only; write row ids, never the tensors, when provenance is needed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.api import LoadContext, TaskSpec
from harness.data.streams import Collator, make_streams, split_batch, stream_split, tokenize
from harness.errors import DataError

if TYPE_CHECKING:
    import torch

    from harness.core.config import RunConfig


@dataclass(frozen=True)
class ProbeStream:
    """The probe rows of one input stream: one encoder pass serves all its tasks."""

    key: str  # the stream's key (input group, or "task:<name>")
    task_names: tuple[str, ...]  # tasks labelling these rows, in stream order
    inputs: dict[str, torch.Tensor]  # input_ids, attention_mask, ...: [rows, seq], padded
    labels: dict[str, torch.Tensor]  # task -> [rows] (or [rows, labels]); MISSING_LABEL / NaN when unlabelled
    row_ids: tuple[str, ...]  # "<stream key>/<row index in the dev split>", in row order

    @property
    def rows(self) -> int:
        return len(self.row_ids)

    def head(self, rows: int) -> ProbeStream:
        """The first ``rows`` rows (see ``part``)."""
        return self.part(0, rows)

    def part(self, start: int, stop: int) -> ProbeStream:
        """Rows ``start:stop``, with the padding columns that none of them uses trimmed."""
        mask = self.inputs["attention_mask"][start:stop]  # [rows, seq]
        used = mask.any(dim=0).nonzero()
        width = int(used.max()) + 1 if len(used) else 1
        return ProbeStream(
            self.key,
            self.task_names,
            {k: v[start:stop, :width] for k, v in self.inputs.items()},
            {k: v[start:stop] for k, v in self.labels.items()},
            self.row_ids[start:stop],
        )


@dataclass(frozen=True)
class ProbeSet:
    """Probe rows per input stream, drawn by ``build_probe``; see the module docstring."""

    streams: tuple[ProbeStream, ...]
    seed: int  # the seed the rows were drawn with
    batch_rows: int  # rows per stream in the gradient/TAG probe batches (RunConfig.probe_batch)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t for s in self.streams for t in s.task_names)

    @property
    def row_ids(self) -> tuple[str, ...]:
        """Every row's id, in probe order (stream by stream): the row order of ``layer_features``."""
        return tuple(r for s in self.streams for r in s.row_ids)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.streams)

    def batches(self) -> tuple[ProbeStream, ...]:
        """The gradient/TAG probe batches: the first ``batch_rows`` rows of each stream."""
        return tuple(s.head(self.batch_rows) for s in self.streams)


def quotas(examples: int, sizes: Sequence[int]) -> list[int]:
    """Rows per stream: ``examples`` split evenly (the first streams take the remainder), capped by the stream's size.

    A stream with fewer rows gives all it has; its shortfall is not moved to the other streams.
    """
    base, extra = divmod(examples, len(sizes))
    return [min(size, base + (k < extra)) for k, size in enumerate(sizes)]


def draw_rows(key: str, size: int, count: int, seed: int) -> np.ndarray:
    """``count`` distinct row indices of ``range(size)`` in a seeded random order.

    The generator is seeded by (seed, the stream's key), so a stream's rows do not depend on
    which other streams are in the run, and never on the training seed or global RNG state.
    """
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return rng.permutation(size)[:count]


def build_probe(tasks: Sequence[TaskSpec], ctx: LoadContext, tokenizer: Any, cfg: RunConfig, seed: int) -> ProbeSet:
    """The run's probe set: ``cfg.probe_examples`` dev rows over the tasks' input streams.

    Streams come from ``make_streams(tasks)`` in that order; each gives its share of
    ``cfg.probe_examples`` (``quotas``), drawn by ``draw_rows`` (seeded by ``seed``, in a
    seeded order: the first ``cfg.probe_batch`` rows are a random sample too), tokenized with
    the job's ``tokenizer`` at ``cfg.max_length`` through the shared tokenization cache and
    padded per stream. Under several processes call it inside ``acc.main_process_first()``
    (as the runner tokenizes) so one process writes the cache; every process gets the same
    probe set. Raises ``DataError`` if a stream has no dev rows.
    """
    streams = []
    for stream in make_streams(tasks):
        dev = stream_split(stream, "dev", ctx)
        if dev is None or len(dev) == 0:
            raise DataError(f"input stream {stream.key!r} has no dev rows: the probe set is drawn from dev")
        streams.append((stream, dev))
    counts = quotas(cfg.probe_examples, [len(dev) for _, dev in streams])
    out = []
    for (stream, dev), count in zip(streams, counts, strict=True):
        index = draw_rows(stream.key, len(dev), count, seed)
        tokenized = tokenize(dev.select(index), stream, tokenizer, cfg.max_length, show_progress=False)
        inputs, labels = split_batch(Collator(tokenizer, stream)(list(tokenized)))
        row_ids = tuple(f"{stream.key}/{i}" for i in index.tolist())
        out.append(ProbeStream(stream.key, stream.task_names, dict(inputs), dict(labels), row_ids))
        assert all(len(v) == len(row_ids) for v in [*inputs.values(), *labels.values()]), "one row per id"
    return ProbeSet(tuple(out), seed, cfg.probe_batch)
