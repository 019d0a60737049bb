"""Heads, losses and predictions per problem type; one encoder pass serves every head."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from harness.api import MISSING_LABEL, ProblemType, TaskSpec
from harness.errors import TaskSpecError
from harness.training.model import HeadSpec, build_model, predictions, task_loss

SINGLE, MULTI, REG = ProblemType.SINGLE_LABEL, ProblemType.MULTI_LABEL, ProblemType.REGRESSION


def test_single_label_loss_is_cross_entropy_over_labelled_rows():
    logits = torch.randn(6, 3)
    labels = torch.tensor([0, 2, MISSING_LABEL, 1, MISSING_LABEL, 2])
    keep = labels != MISSING_LABEL
    assert task_loss(SINGLE, logits, labels) == pytest.approx(F.cross_entropy(logits[keep], labels[keep]).item())
    changed = logits.clone()
    changed[2] += 100.0  # a masked row cannot change the loss
    assert task_loss(SINGLE, changed, labels) == pytest.approx(task_loss(SINGLE, logits, labels).item())


def test_multi_label_loss_is_bce_and_masks_rows():
    logits = torch.randn(4, 5)
    labels = torch.randint(0, 2, (4, 5))
    labels[1] = MISSING_LABEL
    keep = torch.tensor([True, False, True, True])
    expected = F.binary_cross_entropy_with_logits(logits[keep], labels[keep].float())
    assert task_loss(MULTI, logits, labels) == pytest.approx(expected.item())


def test_regression_loss_is_mse_and_masks_nan():
    logits = torch.randn(5, 1)
    labels = torch.tensor([1.0, math.nan, 0.5, -2.0, math.nan])
    keep = ~torch.isnan(labels)
    assert task_loss(REG, logits, labels) == pytest.approx(F.mse_loss(logits[keep, 0], labels[keep]).item())


@pytest.mark.parametrize(
    ("problem", "labels"),
    [
        (SINGLE, torch.full((3,), MISSING_LABEL)),
        (MULTI, torch.full((3, 2), MISSING_LABEL)),
        (REG, torch.full((3,), math.nan)),
    ],
)
def test_batch_without_labels_gives_zero_loss_in_the_graph(problem, labels):
    logits = torch.randn(3, 2 if problem is not REG else 1, requires_grad=True)
    loss = task_loss(problem, logits, labels)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_predictions_per_problem_type():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    assert predictions(SINGLE, logits).tolist() == [1, 0]
    assert predictions(MULTI, logits).tolist() == [[1, 1, 0], [1, 0, 1]]
    assert predictions(REG, logits[:, :1]).tolist() == pytest.approx([0.1, 3.0])


def test_one_encoder_forward_serves_all_heads():
    heads = [HeadSpec("a.x", SINGLE, 4), HeadSpec("b", MULTI, 3), HeadSpec("c", REG, 1)]
    torch.manual_seed(0)
    model, tokenizer = build_model("tiny", heads, pooling="mean", dropout=0.0)
    calls = []
    model.encoder.register_forward_hook(lambda *_: calls.append(1))
    batch = tokenizer(["mild canal stenosis", "no disc bulge at c5-c6 level"], padding=True, return_tensors="pt")
    logits = model(tasks=["a.x", "b", "c"], **batch)
    assert len(calls) == 1
    assert {t: tuple(v.shape) for t, v in logits.items()} == {"a.x": (2, 4), "b": (2, 3), "c": (2, 1)}


def test_tiny_preset_is_small_and_tokenizes_offline():
    model, tokenizer = build_model("tiny", [HeadSpec("a", SINGLE, 2)], pooling="cls", dropout=0.1)
    assert sum(p.numel() for p in model.parameters()) <= 1_100_000
    assert "[UNK]" not in tokenizer.tokenize("Moderate canal stenosis at C5-C6; the sentence is grammatical.")


def test_mean_pooling_ignores_padding():
    torch.manual_seed(0)
    model, tokenizer = build_model("tiny", [HeadSpec("a", SINGLE, 2)], pooling="mean", dropout=0.0)
    model.eval()
    alone = tokenizer(["severe foraminal narrowing"], return_tensors="pt")
    padded = tokenizer(
        ["severe foraminal narrowing", "a much longer sentence to force padding of the first"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        assert torch.allclose(model.encode(**alone)[0], model.encode(**padded)[0], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "task name 'Bad Name' is invalid"),
        ({"problem_type": "ranking"}, "unknown problem_type 'ranking'"),
        ({"text_fields": ("a", "b", "c")}, "text_fields needs one or two fields"),
        ({"metrics": ()}, "metrics is empty"),
        ({"labels": ("x",)}, "needs at least two labels"),
        ({"labels": ("x", "x")}, "labels contain duplicates"),
        ({"splits": ("train",)}, "splits must include 'train' and 'dev'"),
        ({"text_fields": "text"}, "text_fields must be a list of strings"),
    ],
)
def test_taskspec_validation(kwargs, message):
    base = {
        "name": "t",
        "problem_type": "single_label_classification",
        "text_fields": ("text",),
        "loader": lambda s, c: None,
        "metrics": ("accuracy",),
        "labels": ("no", "yes"),
    }
    with pytest.raises(TaskSpecError, match=message):
        TaskSpec(**{**base, **kwargs})


def test_regression_task_has_one_output_and_no_labels():
    spec = TaskSpec("r", "regression", ("text",), loader=lambda s, c: None, metrics=("pearson",))
    assert spec.problem_type is REG and spec.num_outputs == 1
    with pytest.raises(TaskSpecError, match="regression task has no labels"):
        TaskSpec("r", "regression", ("text",), loader=lambda s, c: None, metrics=("pearson",), labels=("a", "b"))
