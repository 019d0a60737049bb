"""The runner's per-step path: the fused AdamW and the optimizer calls that skip accelerate's delegating wrapper."""

from __future__ import annotations

import pytest
import torch

from harness.core.config import RunConfig
from harness.training.runner import _optimizer, stepping_optimizer


class _Net(torch.nn.Module):
    """An encoder (a weight, a bias, a LayerNorm) and a head named ``heads.*``, as the runner groups them."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.LayerNorm(4))
        self.heads = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.encoder(x))


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return _Net()


def _train(net: torch.nn.Module, step, steps: int = 3) -> None:
    data = torch.randn(steps, 5, 6, generator=torch.Generator().manual_seed(1))
    for x in data:
        net(x).pow(2).mean().backward()
        step()


def test_the_optimizer_is_torch_fused_adamw_with_the_runner_s_groups():
    opt = _optimizer(_net(), RunConfig(learning_rate=1e-3, head_learning_rate=1e-2, weight_decay=0.1))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["fused"] is True
    groups = {(g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups}
    assert groups == {(1e-3, 0.1, 1), (1e-3, 0.0, 3), (1e-2, 0.1, 1), (1e-2, 0.0, 1)}  # weights / biases, LayerNorm


def test_fused_adamw_updates_as_the_per_tensor_adamw_does():
    cfg = RunConfig(learning_rate=1e-2, head_learning_rate=1e-2, weight_decay=0.1)
    fused, plain = _net(), _net()
    fopt = _optimizer(fused, cfg)
    mine = {id(p): k for k, p in enumerate(fused.parameters())}
    theirs = list(plain.parameters())
    groups = [
        {"params": [theirs[mine[id(p)]] for p in g["params"]], "lr": g["lr"], "weight_decay": g["weight_decay"]}
        for g in fopt.param_groups
    ]
    popt = torch.optim.AdamW(groups, fused=False, foreach=False)

    def fstep():
        fopt.step()
        fopt.zero_grad()

    def pstep():
        popt.step()
        popt.zero_grad()

    _train(fused, fstep, 5)
    _train(plain, pstep, 5)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


def test_a_step_through_the_unwrapped_optimizer_equals_one_through_accelerate():
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    acc = Accelerator(cpu=True)
    cfg = RunConfig(learning_rate=1e-2)
    direct, wrapped = _net(), _net()
    d_opt = acc.prepare_optimizer(_optimizer(direct, cfg))
    w_opt = acc.prepare_optimizer(_optimizer(wrapped, cfg))
    assert isinstance(d_opt, AcceleratedOptimizer)
    stepper = stepping_optimizer(d_opt, acc)
    assert stepper is d_opt.optimizer  # one CPU process, no scaler: accelerate would only delegate

    def via_stepper():
        stepper.step()
        stepper.zero_grad()

    def via_wrapper():
        w_opt.step()
        w_opt.zero_grad()

    _train(direct, via_stepper)
    _train(wrapped, via_wrapper)
    assert all(torch.equal(a, b) for a, b in zip(direct.parameters(), wrapped.parameters(), strict=True))
    assert all(p.grad is None for p in direct.parameters())  # zero_grad sets to None, as accelerate's does


@pytest.mark.parametrize("case", ["subclass", "not synced"])
def test_the_wrapper_is_kept_where_it_does_more_than_delegate(case, monkeypatch):
    from accelerate import Accelerator
    from accelerate.optimizer import AcceleratedOptimizer

    acc = Accelerator(cpu=True)
    opt = acc.prepare_optimizer(_optimizer(_net(), RunConfig()))
    if case == "subclass":  # e.g. DeepSpeed's wrapper, whose step is the engine's business

        class Wrapper(AcceleratedOptimizer):
            def step(self, closure=None):  # noqa: D102
                return None

        opt.__class__ = Wrapper
    else:
        monkeypatch.setattr(type(acc), "sync_gradients", property(lambda self: False))
    assert stepping_optimizer(opt, acc) is opt


class _Ranks:
    """Two processes' first non-finite steps, as ``acc.gather`` returns them: [processes, 2]."""

    num_processes = 2

    def __init__(self, other: list[float]) -> None:
        self.other = other

    def gather(self, pairs: torch.Tensor) -> torch.Tensor:
        return torch.cat([pairs, torch.tensor([self.other])])


def test_a_diverged_epoch_names_the_earliest_non_finite_step_over_the_processes():
    from harness.training.runner import Diverged, _first_bad_step

    mine = torch.tensor(5), torch.tensor(float("nan"))
    assert _first_bad_step(*mine, _Ranks([3.0, float("inf")])) == (3, float("inf"))
    assert _first_bad_step(*mine, _Ranks([0.0, 0.0])) == (5, pytest.approx(float("nan"), nan_ok=True))
    error = Diverged(epoch=2, step=3, steps=12, loss=float("inf"))
    assert str(error).startswith("the training loss is +inf at optimizer step 15 (step 3 of 12 in epoch 2)")
    assert "is nan at" in str(Diverged(1, 1, 4, float("nan")))
