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
