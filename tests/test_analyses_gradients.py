"""The mathematics of harness.analyses.gradients: cosines, per-layer grouping, conflicting layers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from harness.analyses import gradients
from harness.analyses.gradients import (
    gradient_alignment,
    gradient_cosine,
    gradient_cosine_matrix,
    transformer_layer_of,
)
from harness.errors import AnalysisError

EMB = "encoder.embeddings.word_embeddings.weight"
Q0 = "encoder.encoder.layer.0.attention.self.query.weight"
B0 = "encoder.encoder.layer.0.output.dense.bias"
W1 = "encoder.encoder.layer.1.output.dense.weight"
W2 = "encoder.encoder.layer.2.output.dense.weight"


def t64(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_identical_gradients_have_cosine_one_negated_minus_one_orthogonal_zero():
    g = torch.randn(5, 7, generator=torch.Generator().manual_seed(0))
    assert gradient_cosine(g, g) == pytest.approx(1.0, abs=1e-15)
    assert gradient_cosine(g, 3.0 * g) == pytest.approx(1.0, abs=1e-15)
    assert gradient_cosine(g, -g) == pytest.approx(-1.0, abs=1e-15)
    assert gradient_cosine(t64(1.0, 2.0, 0.0), t64(-2.0, 1.0, 5.0)) == 0.0
    assert gradient_cosine(t64(1.0, 0.0), t64(1.0, 1.0)) == pytest.approx(1 / math.sqrt(2), abs=1e-15)


def test_gradient_cosine_matches_numpy_in_float64_for_float32_gradients():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(1000, generator=gen), torch.randn(1000, generator=gen)
    x, y = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    assert gradient_cosine(a, b) == pytest.approx(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)), rel=1e-13)


def test_transformer_layer_of_maps_parameter_names_to_layers():
    assert transformer_layer_of("encoder.layer.3.attention.self.query.weight") == "layer.3"
    assert transformer_layer_of("bert.encoder.layer.11.output.LayerNorm.bias") == "layer.11"
    assert transformer_layer_of(Q0) == "layer.0"  # the harness model wraps the encoder as `encoder`
    assert transformer_layer_of("transformer.h.2.attn.c_attn.weight") == "layer.2"
    assert transformer_layer_of("distilbert.transformer.layer.4.ffn.lin1.weight") == "layer.4"
    assert transformer_layer_of("embeddings.word_embeddings.weight") == "embeddings"
    assert transformer_layer_of("encoder.embeddings.LayerNorm.weight") == "embeddings"
    assert transformer_layer_of("encoder.pooler.dense.weight") == "encoder.pooler.dense"
    assert transformer_layer_of("encoder.layernorm.weight") == "encoder.layernorm"  # `layer` needs an index


def constructed() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Two tasks whose layer cosines are 1 (embeddings), 1/2 (layer.0), -1 (layer.1), 0 (layer.2).

    layer.0 concatenates two parameters: task 1 (1, 0, 0 | 0, 1), task 2 (0, 1, 0 | 0, 1), cosine 1/2, while
    the per-parameter cosines are 0 and 1. Overall: task 1 (1,0, 1,0,0, 0,1, 1,2, 1,0), task 2
    (2,0, 0,1,0, 0,1, -1,-2, 0,1), dot 2 + 1 - 5 + 0 = -2, squared norms 9 and 12: cosine -2 / sqrt(108).
    """
    g1 = {EMB: t64(1.0, 0.0), Q0: t64(1.0, 0.0, 0.0), B0: t64(0.0, 1.0), W1: t64([1.0, 2.0]), W2: t64(1.0, 0.0)}
    g2 = {EMB: t64(2.0, 0.0), Q0: t64(0.0, 1.0, 0.0), B0: t64(0.0, 1.0), W1: t64([-1.0, -2.0]), W2: t64(0.0, 1.0)}
    return g1, g2


def test_per_layer_grouping_overall_cosine_and_conflicting_fraction_on_a_constructed_example():
    g1, g2 = constructed()
    pair = gradient_alignment(g1, g2)
    assert list(pair.per_layer) == ["embeddings", "layer.0", "layer.1", "layer.2"]
    assert pair.per_layer["embeddings"] == pytest.approx(1.0, abs=1e-15)
    assert pair.per_layer["layer.0"] == pytest.approx(0.5, abs=1e-15)
    assert pair.per_layer["layer.1"] == pytest.approx(-1.0, abs=1e-15)
    assert pair.per_layer["layer.2"] == 0.0
    assert pair.overall == pytest.approx(-2 / math.sqrt(108), abs=1e-15)
    assert pair.conflicting_fraction == 1 / 4  # an orthogonal layer does not conflict: only a negative cosine does
    flat1, flat2 = (torch.cat([g[n].reshape(-1) for n in (EMB, Q0, B0, W1, W2)]) for g in (g1, g2))
    assert pair.overall == pytest.approx(gradient_cosine(flat1, flat2), abs=1e-15)  # concatenation, not a mean


def test_layer_of_returning_none_leaves_parameters_out():
    g1, g2 = constructed()
    pair = gradient_alignment(g1, g2, lambda name: None if ".layer.0." in name else transformer_layer_of(name))
    assert list(pair.per_layer) == ["embeddings", "layer.1", "layer.2"]
    assert pair.overall == pytest.approx(-3 / math.sqrt(7 * 10), abs=1e-15)  # dot 2 - 5 + 0, norms^2 7 and 10
    assert pair.conflicting_fraction == 1 / 3


def random_task_grads(tasks: int = 3, seed: int = 2) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    shared = {
        EMB: torch.randn(6, 4, generator=gen),
        Q0: torch.randn(4, 4, generator=gen),
        W1: torch.randn(4, generator=gen),
    }
    return [{n: v + 2.0 * torch.randn(v.shape, generator=gen) for n, v in shared.items()} for _ in range(tasks)]


def test_cosine_matrix_is_symmetric_with_unit_diagonal_and_matches_pairwise_cosines():
    grads = random_task_grads()
    m = gradient_cosine_matrix(grads)
    assert m.layers == ("embeddings", "layer.0", "layer.1")
    assert m.per_layer.shape == (3, 3, 3) and m.overall.shape == (3, 3)
    for matrix in [*m.per_layer, m.overall]:
        assert np.allclose(matrix, matrix.T, rtol=0, atol=1e-15)
        assert np.allclose(np.diag(matrix), 1.0, rtol=0, atol=1e-15)
    for i, j in itertools.combinations(range(3), 2):
        for k, name in enumerate((EMB, Q0, W1)):
            assert m.per_layer[k, i, j] == pytest.approx(gradient_cosine(grads[i][name], grads[j][name]), abs=1e-14)
        flat = [torch.cat([g[n].reshape(-1) for n in (EMB, Q0, W1)]) for g in (grads[i], grads[j])]
        assert m.overall[i, j] == pytest.approx(gradient_cosine(*flat), abs=1e-14)
        conflicting = np.mean([m.per_layer[k, i, j] < 0 for k in range(3)])
        assert m.conflicting_fraction[i, j] == conflicting
    assert np.all(np.diag(m.conflicting_fraction) == 0.0)


def test_chunked_dot_products_equal_unchunked(monkeypatch):
    grads = random_task_grads()
    whole = gradient_cosine_matrix(grads)
    monkeypatch.setattr(gradients, "_CHUNK", 5)  # chunk boundaries inside every parameter
    chunked = gradient_cosine_matrix(grads)
    assert np.allclose(chunked.per_layer, whole.per_layer, rtol=0, atol=1e-14)
    assert np.allclose(chunked.overall, whole.overall, rtol=0, atol=1e-14)


def test_zero_or_non_finite_gradients_raise_instead_of_returning_nan():
    g = t64(1.0, 2.0)
    with pytest.raises(AnalysisError, match="g_j is zero"):
        gradient_cosine(g, torch.zeros(2))
    with pytest.raises(AnalysisError, match="g_i has NaN"):
        gradient_cosine(t64(float("nan"), 1.0), g)
    with pytest.raises(AnalysisError, match="different sizes"):
        gradient_cosine(g, t64(1.0, 2.0, 3.0))
    g1, g2 = constructed()
    g2[W1] = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(AnalysisError, match=r"the gradient of task 1 on layer\.1 is zero.*layer_of returns None"):
        gradient_alignment(g1, g2)


def test_mismatched_parameters_raise():
    g1, g2 = constructed()
    del g2[B0]
    g2["heads.b.weight"] = t64(1.0)
    with pytest.raises(AnalysisError, match=r"task 1 has gradients for other parameters.*heads\.b\.weight"):
        gradient_alignment(g1, g2)
    with pytest.raises(AnalysisError, match="no shared parameter left"):
        gradient_alignment(*constructed(), lambda name: None)
    with pytest.raises(AnalysisError, match="at least one task"):
        gradient_cosine_matrix([])
