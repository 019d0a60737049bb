"""A trained job's model folder (``jobs/<key>/best/``), self-describing: ``harness predict`` needs nothing else.

Layout (every weight stored once)::

    config.json, model.safetensors   the encoder, saved by ``save_pretrained``: loads with
                                     ``transformers.AutoModel.from_pretrained(folder)``
    tokenizer.json, tokenizer_config.json, ...
                                     the tokenizer (``save_pretrained``): ``AutoTokenizer.from_pretrained``
    heads.safetensors                the heads: ``<head key>.weight`` [outputs, hidden] and
                                     ``<head key>.bias`` [outputs] (head key: the task name, "." -> "__")
    harness.json                     ``ModelInfo``: per head its task, problem type, label names,
                                     multi-label thresholds, input reader and text fields; pooling,
                                     max_length, the job, the epoch, the harness version

A folder is written whole into ``best.tmp/`` and then swapped in (``best/`` -> ``best.old/``,
``best.tmp/`` -> ``best/``, ``best.old/`` removed), so a kill never leaves a half-written
``best/``; a kill between the two renames leaves ``best.old/``, which the next save or load puts
back. Folders written before this format (one ``model.safetensors`` of the whole model, keys
``encoder.*`` and ``heads.*``, no ``harness.json``) still load into a model (``load_weights``,
for ``--resume``), but ``harness predict`` refuses them (``read_info``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.api import ProblemType, TaskSpec
from harness.core.shared import current_umask
from harness.errors import RunError

MODEL_INFO = "harness.json"
HEADS_FILE = "heads.safetensors"
MODEL_INFO_VERSION = 1
FORMAT = "harness-model"


@dataclass(frozen=True)
class HeadInfo:
    """One head of a saved model: what it predicts and what it reads."""

    task: str
    problem_type: str  # ProblemType value
    labels: list[str]  # class names (single/multi-label), empty for regression
    outputs: int  # width of the head: len(labels), or 1 for regression
    input_reader: str  # the registered InputReader that turns an input record into the head's units
    text_fields: list[str]  # the task's text fields, in the order the tokenizer receives them
    input_group: str | None = None
    task_version: str = "1"
    thresholds: list[float] | None = None  # multi-label: label j is predicted when sigmoid(logit_j) > thresholds[j]


@dataclass(frozen=True)
class ModelInfo:
    """``harness.json``: everything ``harness predict`` needs besides the weights and tokenizer."""

    heads: list[HeadInfo]
    pooling: str  # "mean" (over non-padding tokens) or "cls"
    max_length: int  # tokens per input: longer inputs are truncated, as in training
    encoder: str  # the encoder the job was fine-tuned from (preset, folder or hub id)
    job: str  # the job's folder name in its run directory (its key)
    kind: str  # "stl" or "mtl"
    seed: int
    epoch: int  # the saved epoch (1-based): the best by the dev selection score so far
    selection: float | None  # that epoch's dev selection score (mean primary dev metric)
    threshold_mode: str = "fixed"  # multi-label thresholds: "fixed" (0.5) or "tuned" on dev
    harness: str = ""  # the harness version that saved it
    format: str = FORMAT
    version: int = MODEL_INFO_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> ModelInfo:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RunError(f'{where}: not a harness model description (no "format": {FORMAT!r})')
        if data.get("version") != MODEL_INFO_VERSION:
            raise RunError(
                f"{where}: model description of version {data.get('version')!r}; this harness reads version "
                f"{MODEL_INFO_VERSION}: use the harness version that saved it"
            )
        try:
            heads = [HeadInfo(**{k: v for k, v in h.items() if k in _names(HeadInfo)}) for h in data["heads"]]
            values = {k: v for k, v in data.items() if k in _names(cls) and k != "heads"}
            info = cls(heads=heads, **values)
        except (KeyError, TypeError, AttributeError) as exc:
            raise RunError(f"{where}: damaged model description ({type(exc).__name__}: {exc})") from None
        from harness.core.config import POOLING

        if info.pooling not in POOLING:
            raise RunError(f"{where}: damaged model description (pooling must be one of {', '.join(POOLING)})")
        return info

    def head(self, task: str) -> HeadInfo:
        return next(h for h in self.heads if h.task == task)


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def model_info(
    tasks: Sequence[TaskSpec], cfg: Any, *, job: str, kind: str, seed: int, record: Mapping[str, Any]
) -> ModelInfo:
    """The description of a job's model after the epoch ``record`` (the runner's epoch record:
    ``epoch``, ``selection`` and, with multi-label tasks, ``thresholds`` {task: [per label]})."""
    from harness import __version__

    thresholds = record.get("thresholds", {})
    heads = [
        HeadInfo(
            task=t.name,
            problem_type=t.problem_type.value,
            labels=list(t.labels),
            outputs=t.num_outputs,
            input_reader=t.input_reader,
            text_fields=list(t.text_fields),
            input_group=t.input_group,
            task_version=t.version,
            thresholds=[float(x) for x in thresholds[t.name]] if t.name in thresholds else None,
        )
        for t in tasks
    ]
    return ModelInfo(
        heads=heads,
        pooling=cfg.pooling,
        max_length=cfg.max_length,
        encoder=cfg.model,
        job=job,
        kind=kind,
        seed=seed,
        epoch=int(record["epoch"]),
        selection=_finite_or_none(record.get("selection")),
        threshold_mode=cfg.multilabel_threshold,
        harness=__version__,
    )


def _finite_or_none(value: Any) -> float | None:
    import math

    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@functools.lru_cache(maxsize=2)
def _tokenizer(model: str) -> Any:
    from harness.training.model import load_tokenizer

    return load_tokenizer(model)


def save_best(acc: Any, model: Any, folder: Path, info: ModelInfo) -> None:
    """Write the model folder (layout above) on the main process; other processes return at once.

    ``model`` may be wrapped (DDP); the tokenizer is the one of ``info.encoder``, as in training.
    """
    if not acc.is_main_process:
        return
    from safetensors.torch import save_file

    module = acc.unwrap_model(model)
    tmp, old = _siblings(folder)
    recover(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with _quiet_transformers():
        module.encoder.save_pretrained(str(tmp))
        _tokenizer(info.encoder).save_pretrained(str(tmp))
    heads = {k: v.detach().contiguous().cpu() for k, v in module.heads.state_dict().items()}
    save_file(heads, str(tmp / HEADS_FILE), metadata={"format": "pt"})
    (tmp / MODEL_INFO).write_text(json.dumps(info.to_json(), indent=1) + "\n", encoding="utf-8")
    _readable_as_umask(tmp)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _readable_as_umask(folder: Path) -> None:
    """The files as readable as the umask allows (safetensors writes them 0600)."""
    umask = current_umask()
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)


def _siblings(folder: Path) -> tuple[Path, Path]:
    return folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")


def recover(folder: Path) -> None:
    """Put back ``best.old/`` when a kill between the two renames of ``save_best`` left no ``best/``."""
    _, old = _siblings(folder)
    if not folder.exists() and old.is_dir():
        old.rename(folder)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Writing model shards" bar: the harness reports progress itself."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _encoder_state(folder: Path) -> dict[str, Any]:
    """The encoder's weights (``model.safetensors``, or its shards ``model-0000k-of-0000n.safetensors``)."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for file in sorted(folder.glob("model*.safetensors")):
        state.update(load_file(str(file)))
    return state


def load_weights(module: Any, folder: Path) -> None:
    """Load a saved folder's weights into ``module`` (an unwrapped ``MultiTaskModel`` of the same
    tasks), strictly; also a folder of the format before ``harness.json`` (module docstring)."""
    from safetensors.torch import load_file

    recover(folder)
    if (folder / MODEL_INFO).is_file():
        module.encoder.load_state_dict(_encoder_state(folder))
        module.heads.load_state_dict(load_file(str(folder / HEADS_FILE)))
        return
    state: dict[str, Any] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    module.load_state_dict(state)


def read_info(folder: Path) -> ModelInfo:
    """``folder/harness.json``; ``RunError`` saying why a folder holds no usable model."""
    recover(folder)
    path = folder / MODEL_INFO
    if not path.is_file():
        if any(folder.glob("*.safetensors")):
            raise RunError(
                f"{folder}: saved by an older harness (weights only, no {MODEL_INFO}); it cannot be used for "
                "predictions: train the job again with this version (harness run ... --job-store none)"
            )
        raise RunError(f"{folder}: no saved model ({MODEL_INFO} missing)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: cannot be read ({type(exc).__name__}); the model folder is damaged") from None
    return ModelInfo.from_json(data, str(path))


@dataclass(frozen=True)
class LoadedModel:
    """A saved model ready for inference: ``model`` in eval mode on its device, the tokenizer, the description."""

    model: Any  # MultiTaskModel
    tokenizer: Any
    info: ModelInfo
    folder: Path


def load_saved(folder: Path, device: str = "cpu") -> LoadedModel:
    """Rebuild the model of a folder (layout above): the encoder from its config and weights
    (strictly: a missing or unexpected weight is a ``RunError``), the heads, the tokenizer."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from harness.training.model import HeadSpec, MultiTaskModel

    info = read_info(folder)
    try:
        state = _encoder_state(folder)
        config = AutoConfig.from_pretrained(str(folder))
        with _quiet_transformers():
            encoder = _encoder_from_config(AutoModel, config, has_pooler=any(k.startswith("pooler.") for k in state))
        encoder.load_state_dict(state)
        specs = [HeadSpec(h.task, ProblemType(h.problem_type), h.outputs) for h in info.heads]
        model = MultiTaskModel(encoder, specs, pooling=info.pooling, dropout=0.0)
        model.heads.load_state_dict(load_file(str(folder / HEADS_FILE)))
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, RuntimeError, ValueError, KeyError, SafetensorError) as exc:  # cut, replaced, not safetensors
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise RunError(f"{folder}: the saved model cannot be loaded ({type(exc).__name__}: {text})") from None
    return LoadedModel(model.to(device).eval(), tokenizer, info, folder)


def _encoder_from_config(auto: Any, config: Any, has_pooler: bool) -> Any:
    """The encoder's architecture; without a pooler when the saved weights have none (the ``tiny`` preset)."""
    if has_pooler:
        return auto.from_config(config)
    try:
        return auto.from_config(config, add_pooling_layer=False)
    except TypeError:  # an architecture without that option
        return auto.from_config(config)
