"""Task sampling for streams on different inputs: proportional, temperature, uniform."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConfigError
from harness.training.sampling import epoch_schedule, stream_probabilities

SIZES = [300, 100, 20]


def test_proportional_visits_every_batch_once():
    schedule = epoch_schedule(SIZES, "proportional", 2.0, seed=1)
    assert np.bincount(schedule).tolist() == SIZES
    assert schedule != sorted(schedule)  # interleaved, not one stream after another


def test_schedule_is_deterministic_per_seed():
    assert epoch_schedule(SIZES, "temperature", 2.0, 5) == epoch_schedule(SIZES, "temperature", 2.0, 5)
    assert epoch_schedule(SIZES, "temperature", 2.0, 5) != epoch_schedule(SIZES, "temperature", 2.0, 6)


@pytest.mark.parametrize(("strategy", "temperature"), [("temperature", 2.0), ("temperature", 5.0), ("uniform", 1.0)])
def test_sampled_shares_match_probabilities(strategy, temperature):
    p = stream_probabilities(SIZES, strategy, temperature)
    counts = np.zeros(3)
    for seed in range(20):
        counts += np.bincount(epoch_schedule(SIZES, strategy, temperature, seed), minlength=3)
    assert np.allclose(counts / counts.sum(), p, atol=0.01)
    assert len(epoch_schedule(SIZES, strategy, temperature, 0)) == sum(SIZES)


def test_probability_formulas():
    n = np.array(SIZES, dtype=float)
    assert np.allclose(stream_probabilities(SIZES, "proportional"), n / n.sum())
    assert np.allclose(stream_probabilities(SIZES, "temperature", 2.0), np.sqrt(n) / np.sqrt(n).sum())
    assert np.allclose(stream_probabilities(SIZES, "uniform"), 1 / 3)
    # a higher temperature flattens towards uniform
    assert stream_probabilities(SIZES, "temperature", 10.0)[2] > stream_probabilities(SIZES, "temperature", 2.0)[2]


def test_unknown_strategy():
    with pytest.raises(ConfigError, match="unknown sampling strategy 'random'"):
        stream_probabilities(SIZES, "random")


def _padding(order: list[int], lengths: list[int], batch_size: int) -> float:
    """Padded tokens over real tokens when ``order`` is cut into batches of ``batch_size``."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in b) * len(b) for b in batches) / sum(lengths)


def _lengths(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(3, 60, size=n).tolist()


@pytest.mark.parametrize(("n", "batch_size"), [(2048, 32), (603, 16), (100, 32), (7, 32), (32, 32), (0, 8)])
def test_length_grouped_order_is_a_permutation_with_the_short_batch_last(n, batch_size):
    import torch

    from harness.training.sampling import length_grouped_order

    lengths = _lengths(n)
    order = length_grouped_order(lengths, batch_size, torch.Generator().manual_seed(1))
    assert sorted(order) == list(range(n))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    assert all(len(b) == batch_size for b in batches[:-1])
    full = [b for b in batches if len(b) == batch_size]
    if full:  # the batch with the longest row comes first
        assert max(lengths[i] for i in batches[0]) == max(lengths[i] for b in full for i in b)


def test_length_grouped_batches_pad_less_than_transformers_and_come_in_random_order():
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    from harness.training.sampling import length_grouped_order

    lengths = _lengths(2048)
    ours = [length_grouped_order(lengths, 32, torch.Generator().manual_seed(s)) for s in range(5)]
    torch.manual_seed(0)
    theirs = [get_length_grouped_indices(lengths, 32) for _ in range(5)]
    shuffled = [torch.randperm(2048, generator=torch.Generator().manual_seed(s)).tolist() for s in range(5)]
    pad = {
        k: np.mean([_padding(o, lengths, 32) for o in v])
        for k, v in [("ours", ours), ("theirs", theirs), ("shuffled", shuffled)]
    }
    assert pad["ours"] < pad["theirs"] < pad["shuffled"]
    assert pad["ours"] < 1.1
    # the batches after the first are not in length order (transformers' come longest to shortest per megabatch)
    longest = [max(lengths[i] for i in ours[0][k : k + 32]) for k in range(32, 2048, 32)]
    assert longest != sorted(longest, reverse=True) and longest != sorted(longest)
    assert ours[0] != ours[1]  # another draw, other batches


def test_length_grouped_sampler_follows_the_global_rng_like_every_process():
    import torch

    from harness.training.sampling import LengthGroupedSampler

    sampler = LengthGroupedSampler(_lengths(300), 16)
    torch.manual_seed(7)
    first = list(sampler)
    torch.manual_seed(7)
    assert list(sampler) == first and len(sampler) == 300
    torch.manual_seed(8)
    assert list(sampler) != first
