"""The probe set (seeded dev rows, no text) and the layer features CKA is computed from."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from harness.analyses.features import layer_features
from harness.analyses.probe import build_probe, draw_rows, quotas
from harness.api import LoadContext
from harness.core.config import RunConfig
from harness.core.plugins import build_registries
from harness.data.streams import make_streams, stream_split
from harness.training.model import HeadSpec, build_model, load_tokenizer

TOY = ("toy.colour", "toy.score", "toy.size")  # two streams: "toy" (colour, size) and task:toy.score


@pytest.fixture(scope="module")
def toy_tasks():
    import toy

    from harness.core.plugins import new_manager

    registries = build_registries(new_manager(autoload=False, extra=[("toy", toy)]))
    return [registries.tasks.get(n) for n in TOY]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


def probe_of(tasks, tokenizer, seed=0, **cfg):
    return build_probe(tasks, LoadContext(), tokenizer, RunConfig(**{"probe_examples": 21, **cfg}), seed)


def test_quotas_split_evenly_and_are_capped_by_small_streams():
    assert quotas(21, [64, 64]) == [11, 10]
    assert quotas(30, [5, 64, 64]) == [5, 10, 10]  # the short stream gives all it has; no redistribution
    assert sum(quotas(256, [1000] * 7)) == 256


def test_drawn_rows_are_distinct_and_a_prefix_of_a_larger_draw():
    rows = draw_rows("toy", 64, 20, seed=3)
    assert len(set(rows.tolist())) == 20 and rows.min() >= 0 and rows.max() < 64
    assert draw_rows("toy", 64, 10, seed=3).tolist() == rows[:10].tolist()
    assert draw_rows("other", 64, 20, seed=3).tolist() != rows.tolist()  # streams draw independently


def test_the_probe_is_deterministic_for_a_seed_whatever_the_global_rngs(toy_tasks, tokenizer):
    torch.manual_seed(1)
    np.random.seed(1)
    first = probe_of(toy_tasks, tokenizer, seed=7)
    torch.manual_seed(2)
    np.random.seed(2)
    again = probe_of(toy_tasks, tokenizer, seed=7)
    other = probe_of(toy_tasks, tokenizer, seed=8)
    assert first.row_ids == again.row_ids
    for a, b in zip(first.streams, again.streams, strict=True):
        assert all(torch.equal(a.inputs[k], b.inputs[k]) for k in a.inputs)
        assert all(torch.equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert other.row_ids != first.row_ids


def test_rows_come_from_dev_with_their_own_labels_and_tokens(toy_tasks, tokenizer):
    probe = probe_of(toy_tasks, tokenizer)
    assert [s.key for s in probe.streams] == ["toy", "task:toy.score"]
    assert [s.rows for s in probe.streams] == [11, 10] and probe.rows == 21
    assert probe.task_names == ("toy.colour", "toy.size", "toy.score")
    for stream, probe_stream in zip(make_streams(toy_tasks), probe.streams, strict=True):
        dev = stream_split(stream, "dev", LoadContext())
        for r, row_id in enumerate(probe_stream.row_ids):
            key, index = row_id.rsplit("/", 1)
            assert key == stream.key
            row = dev[int(index)]
            ids = tokenizer(row["text"], truncation=True, max_length=128)["input_ids"]
            mask = probe_stream.inputs["attention_mask"][r].bool()
            assert probe_stream.inputs["input_ids"][r][mask].tolist() == ids
            for k, task in enumerate(stream.tasks):
                assert float(probe_stream.labels[task.name][r]) == pytest.approx(row[f"label_{k}"])


def test_the_probe_holds_no_text(toy_tasks, tokenizer):
    probe = probe_of(toy_tasks, tokenizer)
    blob = pickle.dumps(probe)
    for stream in make_streams(toy_tasks):
        dev = stream_split(stream, "dev", LoadContext())
        for text in dev["text"]:
            assert text.encode() not in blob


def test_probe_batches_are_the_first_rows_with_unused_padding_trimmed(toy_tasks, tokenizer):
    probe = probe_of(toy_tasks, tokenizer, probe_batch=4)
    for full, batch in zip(probe.streams, probe.batches(), strict=True):
        assert batch.rows == 4 and batch.row_ids == full.row_ids[:4]
        width = batch.inputs["input_ids"].shape[1]
        assert batch.inputs["attention_mask"][:, -1].any()  # no all-padding column left
        assert torch.equal(batch.inputs["input_ids"], full.inputs["input_ids"][:4, :width])
        assert not full.inputs["attention_mask"][:4, width:].any()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_features_equal_a_direct_hidden_states_computation(toy_tasks, tokenizer, pooling):
    from accelerate import Accelerator

    torch.manual_seed(0)
    model, _ = build_model("tiny", [HeadSpec.of(t) for t in toy_tasks], pooling, 0.1)
    probe = probe_of(toy_tasks, tokenizer)
    model.train()
    features = layer_features(model, probe, Accelerator(cpu=True), pooling, batch_size=4)  # chunks + trimmed padding
    assert model.training and model.encoder.training  # mode restored
    assert features.shape == (3, 21, 128) and features.dtype == np.float64  # embeddings + 2 layers
    model.eval()
    expected = []
    with torch.no_grad():
        for stream in probe.streams:  # whole streams at once, padded to the stream's longest row
            out = model.encoder(**stream.inputs, output_hidden_states=True)
            mask = stream.inputs["attention_mask"].unsqueeze(-1).double()
            for layer, hidden in enumerate(out.hidden_states):
                hidden = hidden.double()
                pooled = hidden[:, 0] if pooling == "cls" else (hidden * mask).sum(1) / mask.sum(1)
                expected.append((layer, pooled))
            last = model.encode(**stream.inputs)  # the last layer is what the heads see
            expected.append((-1, last.double()))
    for layer in range(3):
        direct = torch.cat([p for k, p in expected if k == layer]).numpy()
        np.testing.assert_allclose(features[layer], direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(features[-1], torch.cat([p for k, p in expected if k == -1]).numpy(), atol=1e-5)
    assert np.abs(features[0] - features[1]).max() > 1e-3  # layers differ: not one layer repeated
