"""The SST-2 training-speed setups: the harness's STL job, a run_glue_no_trainer-style loop, a bare loop.

All three train the same encoder on the same rows (a seeded slice of ``ROWS`` rows of
``SST-2/train.tsv``, as the harness's ``max_train_examples`` cuts it), batch ``BATCH``,
``MAX_LENGTH`` tokens at most, fp32, AdamW with linear decay; one call of an ``epoch``
function is one whole epoch, data loading included (tokenization is done once before, as both
the harness, from its cache, and the reference script, with ``datasets.map``, do it).

- ``HarnessSST2.epoch``: ``train_epoch`` on what ``prepare_training`` builds for an STL job:
  what ``harness run`` trains with (length-grouped batches, its collator, its optimizer, its
  progress bookkeeping as off a terminal).
- ``reference_epoch``: the loop of transformers' ``examples/pytorch/text-classification/
  run_glue_no_trainer.py``: ``tokenizer(...)`` with ``padding=False`` (then
  ``DataCollatorWithPadding``, dynamic padding) or ``padding="max_length"`` (then
  ``default_data_collator``), a shuffled ``DataLoader``, ``AutoModelForSequenceClassification``,
  ``torch.optim.AdamW`` (no decay on biases and LayerNorm weights), ``get_scheduler("linear")``,
  one ``Accelerator`` and ``accelerator.backward``.
- ``HarnessSST2.bare_epoch``: the harness's model and optimizer on the batches of one
  harness epoch, collated once beforehand: forward, loss, backward, step; nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tests.conftest import GLUE_DIR

ROWS = 2048  # training rows per epoch
BATCH = 32
MAX_LENGTH = 128
LEARNING_RATE = 1e-4
TASK = "sst2"


def glue_dir() -> Path:
    """The GLUE TSV folder: ``$HARNESS_GLUE_DIR`` or the shared data folder next to the repository."""
    return Path(os.environ.get("HARNESS_GLUE_DIR") or GLUE_DIR)


@dataclass
class HarnessSST2:
    """The harness's prepared STL job on SST-2 and the rows it trains on."""

    job: Any  # harness.training.runner.PreparedJob
    model_name: str
    texts: list[str]
    labels: list[int]
    epochs_run: int = 0
    _batches: list[tuple[dict[str, torch.Tensor], torch.Tensor]] = field(default_factory=list)

    @classmethod
    def build(cls, model: str, rows: int = ROWS, epochs: int = 64) -> HarnessSST2:
        """Prepare the job (its schedule spans ``epochs`` epochs: more than a benchmark runs)."""
        from harness.api import LoadContext
        from harness.core.config import RunConfig
        from harness.core.plugins import build_registries, new_manager
        from harness.data.streams import make_streams, stream_split
        from harness.protocol.execute import make_accelerator
        from harness.training.progress import RunProgress
        from harness.training.runner import TrainSetup, prepare_training

        registries = build_registries(new_manager(load=["glue"], autoload=False))
        task = registries.tasks.get(TASK)
        cfg = RunConfig(
            model=model,
            batch_size=BATCH,
            max_length=MAX_LENGTH,
            max_train_examples=rows,
            max_eval_examples=BATCH,
            epochs=epochs,
            learning_rate=LEARNING_RATE,
        )
        ctx = LoadContext(data_dir=glue_dir())
        progress = RunProgress(total_jobs=1, live=False)  # as harness run reports off a terminal
        progress.start_job(f"STL {TASK}", 1.0, epochs, key=TASK)
        setup = TrainSetup("stl", [task], 0, registries.metrics, cfg, ctx, make_accelerator(cfg))
        job = prepare_training(setup, progress.job(TASK))
        rows_ = stream_split(make_streams([task])[0], "train", ctx, rows)
        assert rows_ is not None and len(rows_) == rows
        return cls(job, model, list(rows_["sentence"]), list(rows_["label_0"]))

    @property
    def rows(self) -> int:
        return len(self.texts)

    def epoch(self) -> None:
        """One epoch of the harness's training loop (``train_epoch``), seeded as ``run_job`` seeds it."""
        from accelerate.utils import set_seed

        from harness.training.runner import train_epoch

        seed = 10_007 + self.epochs_run
        set_seed(seed)
        train_epoch(self.job.training, self.epochs_run, seed)
        self.epochs_run += 1

    def bare_epoch(self) -> None:
        """The same model and optimizer over one harness epoch's batches, collated beforehand."""
        from torch.nn import functional as F

        training = self.job.training
        if not self._batches:
            self._batches = self._collate_once()
        model, optimizer, scheduler = training.model, training.optimizer.optimizer, training.scheduler.scheduler
        tasks = training.streams[0].task_names
        model.train()
        for inputs, labels in self._batches:
            logits = model(tasks=tasks, **inputs)[tasks[0]]
            F.cross_entropy(logits, labels).backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()

    def _collate_once(self) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        from harness.data.streams import split_batch

        loader = self.job.training.loaders[0]
        loader.set_epoch(0)
        out = []
        for batch in loader:
            inputs, labels = split_batch(batch)
            out.append((inputs, next(iter(labels.values()))))
        return out

    def padded_tokens(self) -> float:
        """Padded tokens of one harness epoch's batches over the real tokens (1.0 = no padding)."""
        batches = self._batches or self._collate_once()
        padded = sum(inputs["input_ids"].numel() for inputs, _ in batches)
        real = sum(int(inputs["attention_mask"].sum()) for inputs, _ in batches)
        return padded / real


def reference_epoch(
    harness: HarnessSST2, pad_to_max_length: bool, epochs: int = 64, fused: bool = False
) -> Callable[[], None]:
    """One epoch of run_glue_no_trainer.py's loop on the harness's rows (see the module docstring).

    ``fused``: torch's fused AdamW kernel (as the harness uses) instead of the script's default
    AdamW: what is left of the speed-up is the padding and the loop.
    """
    import datasets
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import DataCollatorWithPadding, default_data_collator, get_scheduler

    from harness.training.model import load_tokenizer

    tokenizer = load_tokenizer(harness.model_name)
    accelerator = Accelerator()
    torch.manual_seed(0)
    model = sequence_classifier(harness.model_name, len(tokenizer))
    padding = "max_length" if pad_to_max_length else False
    raw = datasets.Dataset.from_dict({"sentence": harness.texts, "label": harness.labels})

    def preprocess(examples: dict[str, list[Any]]) -> Any:
        result = tokenizer(examples["sentence"], padding=padding, max_length=MAX_LENGTH, truncation=True)
        result["labels"] = examples["label"]
        return result

    train_dataset = raw.map(preprocess, batched=True, remove_columns=raw.column_names)
    collator = default_data_collator if pad_to_max_length else DataCollatorWithPadding(tokenizer)
    loader = DataLoader(train_dataset, shuffle=True, collate_fn=collator, batch_size=BATCH)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
            "weight_decay": 0.01,
        },
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, fused=fused or None)
    scheduler = get_scheduler(
        "linear", optimizer=optimizer, num_warmup_steps=0, num_training_steps=len(loader) * epochs
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    def epoch() -> None:
        model.train()
        for batch in loader:
            outputs = model(**batch)
            accelerator.backward(outputs.loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()

    return epoch


def sequence_classifier(model: str, vocab_size: int) -> Any:
    """``AutoModelForSequenceClassification`` (2 labels) with the harness's encoder for ``model``."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from harness.training.model import TINY, _minilm_path

    if model == "tiny":
        config = BertConfig(vocab_size=vocab_size, max_position_embeddings=512, num_labels=2, **TINY)
        return BertForSequenceClassification(config)
    return AutoModelForSequenceClassification.from_pretrained(str(_minilm_path()), num_labels=2)
