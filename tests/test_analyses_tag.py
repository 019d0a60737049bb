"""TAG lookahead affinity: closed-form values on quadratic toys, signs, exact restoration, no side effects."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from harness.analyses.tag import inter_task_affinity
from harness.errors import AnalysisError


class Targets(nn.Module):
    """A shared point w in the plane; task t's loss is 1/2 ||w - a_t||^2."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2, dtype=torch.float64))


def target_loss(a: tuple[float, float]):
    target = torch.tensor(a, dtype=torch.float64)
    return lambda model: 0.5 * ((model.w - target) ** 2).sum()


def test_a_step_that_provably_helps_is_positive_one_that_provably_hurts_is_negative():
    # From w = 0 a step on task 1 (target a_1 = (1, 0)) moves w to eta * a_1 = (1/2, 0) for eta = 1/2.
    # Task 2, target (2, 0): loss 2 -> (2 - 1/2)^2 / 2 = 9/8, Z = 1 - 9/16 = 7/16 > 0 (helps).
    # Task 3, target (-1, 0): loss 1/2 -> (1 + 1/2)^2 / 2 = 9/8, Z = 1 - 9/4 = -5/4 < 0 (hurts).
    # Task 1 itself: 1/2 -> 1/8, Z = 3/4. A step on task 2 moves w to (1, 0): task 1's loss becomes 0, Z = 1.
    model = Targets()
    losses = [target_loss((1.0, 0.0)), target_loss((2.0, 0.0)), target_loss((-1.0, 0.0))]
    z = inter_task_affinity(model, [model.w], losses, lr=0.5)
    assert z.shape == (3, 3)
    assert z[0, 1] == pytest.approx(7 / 16, abs=1e-15) and z[0, 1] > 0
    assert z[0, 2] == pytest.approx(-5 / 4, abs=1e-15) and z[0, 2] < 0
    assert z[0, 0] == pytest.approx(3 / 4, abs=1e-15)
    assert z[1, 0] == pytest.approx(1.0, abs=1e-15)
    assert z[1, 0] != z[0, 1]  # not symmetric: row = the task stepped on, column = the task affected


class SharedRegression(nn.Module):
    """Linear regression with a shared weight w and one bias per task (task-specific, never stepped)."""

    def __init__(self, d: int, tasks: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(d, generator=gen, dtype=dtype))
        self.b = nn.Parameter(torch.randn(tasks, generator=gen, dtype=dtype))


def regression_problem(dtype: torch.dtype = torch.float64, n: int = 12, d: int = 3, tasks: int = 3):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    y = torch.randn(tasks, n, generator=gen, dtype=dtype)
    model = SharedRegression(d, tasks, dtype)

    def loss_of(t: int):
        return lambda m: ((x @ m.w + m.b[t] - y[t]) ** 2).mean()

    return model, x, y, [loss_of(t) for t in range(tasks)]


def test_matches_the_closed_form_on_a_quadratic_regression_toy():
    model, x, y, losses = regression_problem()
    eta = 0.1
    xn, yn = x.numpy(), y.numpy()
    w, b = model.w.detach().numpy().copy(), model.b.detach().numpy().copy()

    def loss(t: int, weights: np.ndarray) -> float:
        return float(np.mean((xn @ weights + b[t] - yn[t]) ** 2))

    expected = np.empty((3, 3))
    for i in range(3):
        grad = 2.0 / len(xn) * xn.T @ (xn @ w + b[i] - yn[i])  # d/dw mean((Xw + b_i - y_i)^2)
        for j in range(3):
            expected[i, j] = 1.0 - loss(j, w - eta * grad) / loss(j, w)
    z = inter_task_affinity(model, [model.w], losses, lr=eta)
    assert np.allclose(z, expected, rtol=0, atol=1e-13)


def test_parameters_restored_bit_for_bit_and_no_grad_or_optimizer_state_touched():
    model, _, _, losses = regression_problem(dtype=torch.float32)  # float32: an undo by "+= eta * g" would not do
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    sum(loss(model) for loss in losses).backward()
    optimizer.step()  # Adam now has state, and every parameter a .grad
    params = {n: p.detach().numpy().tobytes() for n, p in model.named_parameters()}
    grads = {n: p.grad.numpy().tobytes() for n, p in model.named_parameters()}
    state = copy.deepcopy(optimizer.state_dict())
    model.train()
    z = inter_task_affinity(model, [model.w], losses, lr=0.3)
    assert np.isfinite(z).all() and not np.allclose(z, 0.0)
    assert {n: p.detach().numpy().tobytes() for n, p in model.named_parameters()} == params
    assert {n: p.grad.numpy().tobytes() for n, p in model.named_parameters()} == grads
    assert model.training
    after = optimizer.state_dict()
    for key, value in state["state"].items():
        for name, tensor in value.items():
            assert torch.equal(after["state"][key][name], tensor)
    assert after["param_groups"] == state["param_groups"]


def test_parameters_restored_when_a_loss_function_raises():
    model, _, _, losses = regression_problem()
    before = model.w.detach().clone()
    calls = {"n": 0}

    def failing(m):
        calls["n"] += 1
        if calls["n"] == 1:  # its first call comes after the lookahead step on task 0
            raise RuntimeError("boom")
        return losses[1](m)

    with pytest.raises(RuntimeError, match="boom"):
        inter_task_affinity(model, [model.w], [losses[0], failing], lr=0.5)
    assert model.w.detach().numpy().tobytes() == before.numpy().tobytes()
    assert model.w.grad is None


def test_only_the_listed_shared_parameters_are_stepped():
    # Listing the task biases b as shared too moves them in the step as well, which changes Z.
    model, _, _, losses = regression_problem()
    with_bias = inter_task_affinity(model, [model.w, model.b], losses, lr=0.1)
    only_w = inter_task_affinity(model, [model.w], losses, lr=0.1)
    assert not np.allclose(with_bias, only_w)


def test_invalid_input_raises():
    model, _, _, losses = regression_problem()
    with pytest.raises(AnalysisError, match="positive number"):
        inter_task_affinity(model, [model.w], losses, lr=0.0)
    with pytest.raises(AnalysisError, match="twice"):
        inter_task_affinity(model, [model.w, model.w], losses, lr=0.1)
    with pytest.raises(AnalysisError, match="at least one task"):
        inter_task_affinity(model, [model.w], [], lr=0.1)
    with pytest.raises(AnalysisError, match="scalar tensor"):
        inter_task_affinity(model, [model.w], [lambda m: m.w * 2.0], lr=0.1)
    with pytest.raises(AnalysisError, match="needs L > 0"):
        inter_task_affinity(model, [model.w], [lambda m: (m.w * 0.0).sum()], lr=0.1)
    with pytest.raises(AnalysisError, match="does not depend on the shared parameters"):
        inter_task_affinity(model, [model.w], [lambda m: torch.tensor(1.0)], lr=0.1)
    frozen = torch.zeros(2)
    with pytest.raises(AnalysisError, match="requires grad"):
        inter_task_affinity(model, [frozen], losses, lr=0.1)
    huge = Targets()
    with pytest.raises(AnalysisError, match="after the lookahead step on task 0"):
        inter_task_affinity(huge, [huge.w], [target_loss((1.0, 0.0))], lr=1e308)
