"""Gradient alignment and TAG on probe batches: exact cases, agreement with the reference TAG,
several processes = one, bf16 untouched, training unchanged by the observer, exact resume."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.analyses.gradients import gradient_cosine_matrix
from harness.analyses.lookahead import lookahead_affinity
from harness.analyses.observers import (
    TrainingObserver,
    measure,
    measure_at_init,
    probe_losses,
    shared_parameters,
    tag_affinity,
    task_gradients,
)
from harness.analyses.probe import ProbeSet, ProbeStream
from harness.analyses.tag import inter_task_affinity
from harness.api import MISSING_LABEL, ProblemType
from harness.errors import AnalysisError
from harness.training.model import HeadSpec, MultiTaskModel, build_model, load_tokenizer, task_loss
from harness.training.observers import StepInfo
from tests.conftest import subprocess_env
from tests.test_analyses_tag import regression_problem

REG, SINGLE, MULTI = ProblemType.REGRESSION, ProblemType.SINGLE_LABEL, ProblemType.MULTI_LABEL
NAN = float("nan")
TEXTS = [
    "mild canal stenosis at c5-c6",
    "no foraminal narrowing",
    "severe left foraminal narrowing with a disc bulge",
    "moderate facet arthropathy",
    "normal cord signal",
    "small disc herniation narrowing the right foramen",
    "mild bulge",
]


class FakeAcc:
    """One process of ``processes`` (no process group: all_reduce is patched out where needed)."""

    def __init__(self, rank: int = 0, processes: int = 1):
        self.process_index, self.num_processes, self.device = rank, processes, torch.device("cpu")

    def unwrap_model(self, model):
        return model


@functools.cache
def tokenizer():
    return load_tokenizer("tiny")


def stream(key, labels, texts=TEXTS):
    inputs = dict(tokenizer()(list(texts), padding=True, return_tensors="pt"))
    return ProbeStream(key, tuple(labels), inputs, labels, tuple(f"{key}/{i}" for i in range(len(texts))))


def tiny(heads, seed=0, dropout=0.0, dtype=torch.float32):
    torch.manual_seed(seed)
    model, _ = build_model("tiny", heads, "mean", dropout)
    return model.to(dtype)


def mixed_problem():
    """Three problem types on two streams, with missing labels: c, m label the same rows; r its own."""
    model = tiny([HeadSpec("c", SINGLE, 3), HeadSpec("m", MULTI, 2), HeadSpec("r", REG, 1)])
    pair = stream(
        "pair",
        {
            "c": torch.tensor([0, 2, MISSING_LABEL, 1, 2, MISSING_LABEL, 0]),
            "m": torch.tensor([[1, 0], [MISSING_LABEL] * 2, [0, 1], [1, 1], [MISSING_LABEL] * 2, [0, 0], [1, 0]]),
        },
    )
    solo = stream("task:r", {"r": torch.tensor([0.5, NAN, 2.0, -1.0, NAN, 1.5])}, TEXTS[:6])
    return model, ProbeSet((pair, solo), 0, batch_rows=7)


def opposite_problem():
    """Regression heads a, a2 (identical to a) and b (same head), labels giving residuals +1 (a, a2) and -1 (b).

    Row r's gradient on the encoder is 2 * residual_r * J_r^T w, so g_a2 = g_a and g_b = -g_a
    exactly: cosines 1 and -1. Every loss is 1, and to first order in lr a step on a changes
    L_j by -lr <g_a, g_j>: TAG Z[a, j] = lr <g_a, g_j> / L_j, positive for a2, negative for b.
    """
    model = tiny([HeadSpec("a", REG, 1), HeadSpec("a2", REG, 1), HeadSpec("b", REG, 1)], dtype=torch.float64)
    with torch.no_grad():
        for other in ("a2", "b"):
            model.heads[other].load_state_dict(model.heads["a"].state_dict())
    probe = ProbeSet((stream("s", {"a": torch.zeros(7), "a2": torch.zeros(7), "b": torch.zeros(7)}),), 0, 7)
    model.eval()
    with torch.no_grad():
        fitted = model(tasks=["a"], **probe.streams[0].inputs)["a"].squeeze(-1)
    labels = {"a": fitted - 1.0, "a2": fitted - 1.0, "b": fitted + 1.0}
    return model, ProbeSet((stream("s", labels),), 0, 7)


def test_identical_tasks_have_cosine_one_and_opposite_residuals_minus_one_and_tag_signs():
    model, probe = opposite_problem()
    grads = task_gradients(model, probe.batches(), FakeAcc())
    m = measure(model, probe, FakeAcc(), lr=1e-6)  # ||g||^2 ~ 1e3: a small step keeps second order < 1%
    assert m.tasks == ("a", "a2", "b")
    assert m.alignment.layers == ("embeddings", "layer.0", "layer.1")
    np.testing.assert_allclose(m.alignment.per_layer[:, 0, 1], 1.0, atol=1e-12)
    np.testing.assert_allclose(m.alignment.per_layer[:, 0, 2], -1.0, atol=1e-6)
    assert m.alignment.conflicting_fraction[0, 2] == 1.0 and m.alignment.conflicting_fraction[0, 1] == 0.0
    assert m.tag[0, 1] > 0 and m.tag[0, 2] < 0 and m.tag[2, 0] < 0
    flat = [torch.cat([g.reshape(-1) for g in grads[t].values()]) for t in m.tasks]
    first_order = 1e-6 * torch.stack(flat) @ torch.stack(flat).T  # lr <g_i, g_j> / L_j with L_j = 1
    np.testing.assert_allclose(m.tag, first_order.numpy(), rtol=0.01)


def test_gradients_are_per_task_on_the_shared_encoder_and_touch_nothing():
    model, probe = mixed_problem()
    model.train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = torch.get_rng_state()
    grads = task_gradients(model, probe.batches(), FakeAcc())
    assert list(grads) == ["c", "m", "r"]
    names = [n for n, _ in model.encoder.named_parameters()]
    assert all(list(g) == names for g in grads.values())  # encoder only, no head; all used
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert model.training and torch.equal(torch.get_rng_state(), state)
    # The reference: each task's mean loss over its labelled probe rows, one autograd.grad each.
    model.eval()
    for key, batch in (("c", probe.streams[0]), ("m", probe.streams[0]), ("r", probe.streams[1])):
        logits = model(tasks=[key], **batch.inputs)[key]
        loss = task_loss(model.specs[key].problem_type, logits, batch.labels[key])
        expected = torch.autograd.grad(loss, list(model.encoder.parameters()))
        for g, e in zip(grads[key].values(), expected, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)


def test_shares_of_two_processes_sum_to_the_one_process_gradient_and_loss(monkeypatch):
    # 7 rows split 4/3, 6 rows 3/3, with missing labels on both shares: the per-process pieces
    # must add up to the one-process value (the all-reduce, emulated here by the sum).
    model, probe = mixed_problem()
    batches = probe.batches()
    one = task_gradients(model, batches, FakeAcc())
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, *a, **k: None)
    shares = [task_gradients(model, batches, FakeAcc(rank, 2)) for rank in (0, 1)]
    for task, per in one.items():
        for name, g in per.items():
            torch.testing.assert_close(shares[0][task][name] + shares[1][task][name], g, rtol=1e-5, atol=1e-7)
    losses = [probe_losses(model, batches, FakeAcc(rank, 2), ["c", "m", "r"]) for rank in (0, 1)]
    torch.testing.assert_close(losses[0] + losses[1], probe_losses(model, batches, FakeAcc(), ["c", "m", "r"]))
    assert not torch.equal(losses[0], losses[1])


def test_unused_encoder_parameters_are_left_out():
    from transformers import BertConfig, BertModel

    from harness.training.model import TINY

    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=len(tokenizer()), **TINY), add_pooling_layer=True)
    model = MultiTaskModel(encoder, [HeadSpec("r", REG, 1), HeadSpec("r2", REG, 1)], dropout=0.0)
    batch = stream("s", {"r": torch.arange(7.0), "r2": -torch.arange(7.0)})
    grads = task_gradients(model, [batch], FakeAcc())
    assert not any(n.startswith("pooler.") for n in grads["r"])  # encode never reaches the pooler
    assert len(grads["r"]) == len(shared_parameters(model)) - 2
    gradient_cosine_matrix(list(grads.values()))  # a zero pooler gradient would make it raise


def test_batched_tag_equals_the_reference_on_a_quadratic_toy():
    model, _, _, loss_fns = regression_problem()
    grads = [torch.autograd.grad(f(model), [model.w]) for f in loss_fns]
    z = lookahead_affinity([model.w], grads, lambda: torch.stack([f(model) for f in loss_fns]), lr=0.1)
    np.testing.assert_allclose(z, inter_task_affinity(model, [model.w], loss_fns, lr=0.1), rtol=0, atol=1e-13)


def test_batched_tag_equals_the_reference_on_the_tiny_model():
    model, probe = mixed_problem()
    model = model.double()
    batches = probe.batches()
    grads = task_gradients(model, batches, FakeAcc())
    z = tag_affinity(model, batches, FakeAcc(), grads, lr=1e-3)

    def loss_of(task, batch):
        kind = model.specs[task].problem_type
        return lambda m: task_loss(kind, m(tasks=[task], **batch.inputs)[task], batch.labels[task])

    fns = [loss_of("c", batches[0]), loss_of("m", batches[0]), loss_of("r", batches[1])]
    model.eval()
    reference = inter_task_affinity(model, list(model.encoder.parameters()), fns, lr=1e-3)
    np.testing.assert_allclose(z, reference, rtol=1e-4, atol=1e-6)
    assert np.abs(z).max() > 1e-4  # not trivially zero


def test_tag_restores_parameters_bit_for_bit_and_checks_its_input():
    model, probe = mixed_problem()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = task_gradients(model, probe.batches(), FakeAcc())
    tag_affinity(model, probe.batches(), FakeAcc(), grads, lr=0.3)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    with pytest.raises(AnalysisError, match="positive number"):
        tag_affinity(model, probe.batches(), FakeAcc(), grads, lr=0.0)
    with pytest.raises(AnalysisError, match="L > 0"):
        lookahead_affinity([model.encoder.embeddings.word_embeddings.weight], [[None]], lambda: torch.zeros(1), 0.1)


def test_measurement_ignores_autocast_and_an_autocast_patched_forward():
    # accelerate's bf16 wraps the model's forward in autocast; measurements must stay float32.
    model, probe = mixed_problem()
    plain = measure(model, probe, FakeAcc(), lr=1e-3)
    model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(model.forward)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        patched = measure(model, probe, FakeAcc(), lr=1e-3)
    np.testing.assert_array_equal(patched.alignment.per_layer, plain.alignment.per_layer)
    np.testing.assert_array_equal(patched.tag, plain.tag)


def test_measure_at_init_is_json_ready_with_names_and_directions():
    model, probe = mixed_problem()
    out = json.loads(json.dumps(measure_at_init(model, probe, FakeAcc())))
    assert out["tasks"] == ["c", "m", "r"] and out["layers"] == ["embeddings", "layer.0", "layer.1"]
    assert np.asarray(out["cosine_per_layer"]).shape == (3, 3, 3)
    np.testing.assert_allclose(np.diag(out["cosine_overall"]), 1.0)
    assert out["rows_per_stream"] == 7 and "higher = aligned" in out["directions"]["cosine"]


def _info(model, step, lr=1e-3):
    return StepInfo(model, FakeAcc(), step, 0, lr)


def test_observer_state_roundtrip_resumes_exactly_and_averages_measurements():
    model, probe = mixed_problem()
    first, second = TrainingObserver(probe, every=2), TrainingObserver(probe, every=2)
    singles = []
    for step in range(1, 5):
        first.after_step(_info(model, step))
        if step % 2 == 0:
            singles.append(measure(model, probe, FakeAcc(), lr=1e-3))
        with torch.no_grad():
            model.encoder.embeddings.word_embeddings.weight.mul_(1.5)  # "training" between steps
    assert first.measurements == 2 and first.steps == [2, 4]
    np.testing.assert_allclose(first.means()["tag"], (singles[0].tag + singles[1].tag) / 2, rtol=1e-12)
    mean_overall = (singles[0].alignment.overall + singles[1].alignment.overall) / 2
    np.testing.assert_allclose(first.means()["cosine_overall"], mean_overall, rtol=1e-12)
    saved = json.loads(json.dumps(first.state()))
    second.load_state(saved)
    assert json.dumps(second.state()) == json.dumps(first.state())
    for observer in (first, second):
        observer.after_step(_info(model, 6, lr=0.0))  # the last step of a linear schedule: no TAG
    assert json.dumps({**second.state(), "seconds": 0}) == json.dumps({**first.state(), "seconds": 0})
    assert first.measurements == 3 and first.tag_measurements == 2


def test_observer_records_an_undefined_measurement_and_goes_on():
    model, probe = mixed_problem()
    unlabelled = stream("task:r", {"r": torch.full((6,), NAN)}, TEXTS[:6])
    observer = TrainingObserver(ProbeSet((probe.streams[0], unlabelled), 0, 7), every=1)
    observer.after_step(_info(model, 1))
    assert observer.measurements == 0 and observer.skipped[0]["step"] == 1
    assert "no labelled row" in observer.skipped[0]["reason"]


def _train(tasks, probe, every):
    """One epoch of the runner's train_epoch (dropout on), with or without an observer."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from harness.api import LoadContext
    from harness.core.config import RunConfig
    from harness.training.progress import JobProgress
    from harness.training.runner import Training, prepare_data, train_epoch, train_loader

    cfg = RunConfig(model="tiny", max_train_examples=48, batch_size=16, max_length=32, epochs=1)
    acc = Accelerator(cpu=True)
    set_seed(0)
    model, tokenizer = build_model("tiny", [HeadSpec.of(t) for t in tasks], "mean", 0.1)
    data = prepare_data(tasks, tokenizer, cfg, LoadContext(), acc)
    loaders = [train_loader(ds, s, tokenizer, cfg) for s, ds in zip(data.streams, data.train, strict=True)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, sum(len(dl) for dl in loaders))
    model, optimizer, scheduler, *loaders = acc.prepare(model, optimizer, scheduler, *loaders)
    observers = [TrainingObserver(probe, every)] if every else []
    set_seed(5)
    training = Training(model, loaders, data.streams, optimizer, scheduler, acc, cfg, JobProgress(), observers)
    loss = train_epoch(training, 0, 5)
    weights = {n: p.detach().clone() for n, p in acc.unwrap_model(model).state_dict().items()}
    return loss, weights, observers


def test_an_observed_training_run_is_bit_identical_to_an_unobserved_one():
    import toy

    from harness.analyses.probe import build_probe
    from harness.api import LoadContext
    from harness.core.config import RunConfig
    from harness.core.plugins import build_registries, new_manager

    registries = build_registries(new_manager(autoload=False, extra=[("toy", toy)]))
    tasks = [registries.tasks.get(n) for n in ("toy.colour", "toy.size", "toy.score")]
    cfg = RunConfig(probe_examples=16, probe_batch=8, max_length=32)
    probe = build_probe(tasks, LoadContext(), tokenizer(), cfg, seed=0)
    plain_loss, plain, _ = _train(tasks, probe, every=0)
    observed_loss, observed, (observer,) = _train(tasks, probe, every=2)
    assert observer.steps == [2, 4, 6] and observer.tag_measurements == 2  # lr = 0 after the 6th, last step
    assert observed_loss == plain_loss
    assert all(torch.equal(observed[n], w) for n, w in plain.items())


@pytest.mark.slow
def test_two_processes_measure_what_one_process_measures(tmp_path):
    from accelerate import Accelerator

    from tests.observers_worker import compute

    out = tmp_path / "two.pt"
    worker = Path(__file__).with_name("observers_worker.py")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run(
        [*launch, str(worker), str(out), "no"],
        env=subprocess_env(ACCELERATE_USE_CPU="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(out, weights_only=False)
    one = compute(Accelerator(cpu=True))
    assert two["processes"] == 2 and one["processes"] == 1
    assert one["grads"].keys() == two["grads"].keys()
    for task, per in one["grads"].items():
        assert per.keys() == two["grads"][task].keys()
        for name, g in per.items():
            torch.testing.assert_close(two["grads"][task][name], g, rtol=1e-5, atol=1e-5)
    for key in ("cosine", "tag", "features", "cosine_after_step", "tag_after_step"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5, err_msg=key)
