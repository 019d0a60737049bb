"""Which stream's batch comes next when one model trains on tasks with different inputs.

An epoch has as many steps as all streams have batches together. ``proportional`` visits
every batch of every stream exactly once, in a seeded random order (so each stream's share
equals its size share); ``temperature`` and ``uniform`` draw each step's stream with
p_i ~ n_i ** (1 / T) or p_i = 1 / k, cycling a stream that runs out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import ConfigError


def stream_probabilities(sizes: Sequence[int], strategy: str, temperature: float = 2.0) -> np.ndarray:
    """The target share of steps per stream."""
    n = np.asarray(sizes, dtype=float)
    if strategy == "proportional":
        weights = n
    elif strategy == "temperature":
        weights = n ** (1.0 / temperature)
    elif strategy == "uniform":
        weights = np.ones_like(n)
    else:
        raise ConfigError(f"unknown sampling strategy {strategy!r}; use proportional, temperature or uniform")
    return weights / weights.sum()


def epoch_schedule(num_batches: Sequence[int], strategy: str, temperature: float, seed: int) -> list[int]:
    """Stream index for each step of one epoch; identical on every process given the seed."""
    rng = np.random.default_rng(seed)
    total = int(sum(num_batches))
    if len(num_batches) == 1:
        return [0] * total
    if strategy == "proportional":
        order = np.repeat(np.arange(len(num_batches)), num_batches)
        rng.shuffle(order)
        return order.tolist()
    p = stream_probabilities(num_batches, strategy, temperature)
    return rng.choice(len(num_batches), size=total, p=p).tolist()
