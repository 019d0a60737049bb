"""Gradient alignment between tasks: the cosine between their loss gradients on shared parameters.

The gradient cosine cos(g_i, g_j) = <g_i, g_j> / (||g_i|| ||g_j||) is a **similarity** in
[-1, 1]: 1 when task i's and task j's gradients point the same way, 0 when orthogonal, -1 when
opposite. A negative cosine is a *conflicting* gradient in PCGrad (Yu et al. 2020, "Gradient
Surgery for Multi-Task Learning", NeurIPS); GradVac (Wang et al. 2021, "Gradient Vaccine",
ICLR) reads it layer by layer, as ``gradient_cosine_matrix`` does. It says which way the
gradients point, not how a step on one task changes the other's loss: that is the TAG
lookahead affinity in ``harness.analyses.tag``.

Gradients are torch tensors (numpy arrays are accepted), one ``{parameter name: gradient}``
dict per task holding the shared parameters only (the encoder, not the task heads). Dot
products are taken in float64 on the gradients' device, in chunks, so a large embedding matrix
is never copied whole. Nothing returns NaN: a zero or non-finite gradient raises
``AnalysisError`` (a ``ValueError``), because its cosine is undefined.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import AnalysisError

if TYPE_CHECKING:
    import torch

# Elements per chunk when stacking T flattened gradients in float64: T * 8 MiB at most.
_CHUNK = 1 << 20

_BLOCK = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)(?:\.|$)")


def transformer_layer_of(name: str) -> str:
    """The layer a transformer parameter belongs to, from its name.

    ``encoder.layer.3.attention.self.query.weight`` -> ``layer.3`` (also ``layers.k``,
    ``h.k``, ``block.k``, ``blocks.k``, after any prefix such as ``bert.`` or ``encoder.encoder.``);
    any name with an ``embeddings`` component -> ``embeddings``; anything else -> its module path,
    the name without the final attribute (``encoder.pooler.dense.weight`` -> ``encoder.pooler.dense``),
    so no parameter is merged into a layer it does not belong to.
    """
    block = _BLOCK.search(name)
    if block:
        return f"layer.{int(block.group(1))}"
    parts = name.split(".")
    if "embeddings" in parts:
        return "embeddings"
    return ".".join(parts[:-1]) or name


def _flat(g: Any, what: str) -> torch.Tensor:
    import torch

    t = torch.as_tensor(g).detach().reshape(-1)
    if t.numel() == 0:
        raise AnalysisError(f"{what} is empty")
    return t


def _param_gram(grads: Sequence[torch.Tensor]) -> torch.Tensor:
    """[T, T] float64 CPU matrix of dot products <g_i, g_j> between T flat gradients of one parameter."""
    import torch

    device = grads[0].device
    out = torch.zeros(len(grads), len(grads), dtype=torch.float64)
    for start in range(0, grads[0].numel(), _CHUNK):
        block = torch.stack([g[start : start + _CHUNK].to(device=device, dtype=torch.float64) for g in grads])
        out += (block @ block.T).cpu()  # [T, chunk] @ [chunk, T]
    return out


def gradient_cosine(g_i: Any, g_j: Any) -> float:
    """Cosine <g_i, g_j> / (||g_i|| ||g_j||) of two gradients, flattened: a similarity in [-1, 1].

    g_i, g_j: tensors (or arrays) with the same number of elements, e.g. two tasks' gradients on
    the same parameters. Computed in float64; clipped to [-1, 1] against round-off. Raises
    ``AnalysisError`` (a ``ValueError``) if the sizes differ or either gradient is zero or
    non-finite (the cosine is undefined).
    """
    a, b = _flat(g_i, "g_i"), _flat(g_j, "g_j")
    if a.numel() != b.numel():
        raise AnalysisError(f"g_i and g_j have different sizes: {a.numel()} vs {b.numel()} elements")
    gram = _param_gram([a, b]).numpy()
    _check_sq_norm(gram[0, 0], "g_i")
    _check_sq_norm(gram[1, 1], "g_j")
    return float(np.clip(gram[0, 1] / np.sqrt(gram[0, 0] * gram[1, 1]), -1.0, 1.0))


def _check_sq_norm(value: float, what: str, hint: str = "") -> None:
    if not np.isfinite(value):
        raise AnalysisError(f"{what} has NaN or infinite values")
    if value == 0.0:
        raise AnalysisError(f"{what} is zero: its cosine is undefined{hint}")


def _cosines(gram: np.ndarray, layers: Sequence[str], tasks: Sequence[str]) -> np.ndarray:
    """[L, T, T] cosines from [L, T, T] dot products; raises on a zero or non-finite norm."""
    sq_norms = np.diagonal(gram, axis1=1, axis2=2)  # [L, T]
    hint = "; if these parameters are frozen or unused, leave them out (layer_of returns None for them)"
    for layer, row in zip(layers, sq_norms, strict=True):
        for task, value in zip(tasks, row, strict=True):
            _check_sq_norm(value, f"the gradient of {task} on {layer}", hint)
    norms = np.sqrt(sq_norms)
    return np.clip(gram / (norms[:, :, None] * norms[:, None, :]), -1.0, 1.0)


@dataclass(frozen=True)
class GradientAlignment:
    """Gradient cosines between T tasks' gradients, per layer and over all shared parameters.

    ``per_layer[l, i, j]``: cosine between tasks i and j on the parameters of ``layers[l]``,
    shape [L, T, T]; ``overall[i, j]``: cosine of the gradients on all shared parameters
    concatenated, shape [T, T]. Both symmetric, diagonal 1, similarities in [-1, 1].
    """

    layers: tuple[str, ...]  # layer names, in the order their first parameter appears
    per_layer: np.ndarray  # [L, T, T]
    overall: np.ndarray  # [T, T]

    @property
    def conflicting_fraction(self) -> np.ndarray:
        """[T, T] share of layers whose cosine is negative (conflicting gradients, PCGrad); diagonal 0."""
        return (self.per_layer < 0.0).mean(axis=0)


def _check_names(per_task_grads: Sequence[Mapping[str, Any]]) -> list[str]:
    if len(per_task_grads) == 0:
        raise AnalysisError("gradient cosines need the gradients of at least one task; got none")
    names = list(per_task_grads[0])
    for t, grads in enumerate(per_task_grads[1:], start=1):
        missing, extra = sorted(set(names) - set(grads)), sorted(set(grads) - set(names))
        if missing or extra:
            raise AnalysisError(
                f"task {t} has gradients for other parameters than task 0 (missing {missing[:3]}, extra {extra[:3]}); "
                "pass the shared parameters only, the same for every task"
            )
    return names


def gradient_cosine_matrix(
    per_task_grads: Sequence[Mapping[str, Any]], layer_of: Callable[[str], str | None] = transformer_layer_of
) -> GradientAlignment:
    """Gradient cosines between T tasks, per layer ([L, T, T]) and overall ([T, T]).

    ``per_task_grads[t]`` maps each shared parameter's name to task t's loss gradient on it
    (same names and shapes for every task, e.g. ``{n: p.grad for n, p in encoder.named_parameters()}``
    after task t's backward pass). ``layer_of(name)`` names the layer a parameter belongs to
    (default ``transformer_layer_of``), or returns None to leave the parameter out. Per layer,
    the cosine is taken over that layer's parameters concatenated; overall, over all kept
    parameters concatenated (not an average of layer cosines). Each dot product is computed
    once (a [T, T] Gram matrix per parameter). Raises ``AnalysisError`` for no tasks, differing
    parameter names or shapes, no parameter kept, or a task whose gradient on a layer is zero
    or non-finite (naming task and layer).
    """
    names = _check_names(per_task_grads)
    tasks = [f"task {t}" for t in range(len(per_task_grads))]
    index: dict[str, int] = {}
    grams: list[np.ndarray] = []
    for name in names:
        layer = layer_of(name)
        if layer is None:
            continue
        flats = [_flat(g[name], f"the gradient of task {t} on {name}") for t, g in enumerate(per_task_grads)]
        if any(f.numel() != flats[0].numel() for f in flats):
            raise AnalysisError(f"the tasks' gradients on {name} differ in size: {[f.numel() for f in flats]}")
        if layer not in index:
            index[layer] = len(grams)
            grams.append(np.zeros((len(tasks), len(tasks))))
        grams[index[layer]] += _param_gram(flats).numpy()
    if not grams:
        raise AnalysisError("no shared parameter left: layer_of returned None for every name")
    layers = tuple(index)
    gram = np.stack(grams)  # [L, T, T]
    per_layer = _cosines(gram, layers, tasks)
    overall = _cosines(gram.sum(axis=0, keepdims=True), ["all shared parameters"], tasks)[0]
    return GradientAlignment(layers, per_layer, overall)


@dataclass(frozen=True)
class PairGradientAlignment:
    """Gradient cosines between two tasks: per layer, overall, and the share of conflicting layers."""

    per_layer: dict[str, float]  # layer name -> cosine in [-1, 1]
    overall: float  # cosine over all shared parameters concatenated
    conflicting_fraction: float  # share of layers with a negative cosine


def gradient_alignment(
    g_i: Mapping[str, Any], g_j: Mapping[str, Any], layer_of: Callable[[str], str | None] = transformer_layer_of
) -> PairGradientAlignment:
    """Gradient cosines between two tasks' gradient dicts: ``gradient_cosine_matrix`` for T = 2."""
    m = gradient_cosine_matrix([g_i, g_j], layer_of)
    per_layer = {layer: float(m.per_layer[k, 0, 1]) for k, layer in enumerate(m.layers)}
    return PairGradientAlignment(per_layer, float(m.overall[0, 1]), float(m.conflicting_fraction[0, 1]))
