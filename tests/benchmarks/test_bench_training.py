"""Benchmarks: the harness's training throughput against a run_glue_no_trainer-style loop, and its overhead.

Whole epochs on a 2,048-row SST-2 slice, batch 32, fp32 (setups in ``sst2.py``):

- harness / the reference loop with dynamic padding: >= 2.5x the examples/s;
- harness / the reference loop padding every row to 128 tokens: >= 7x;
- harness epoch / a bare forward-backward-step loop over the same batches collated beforehand
  (same model and optimizer): <= 1.10 (the data pipeline and the loop's own work add <= 10 %).

The tiny random-init model always; MiniLM only with ``HARNESS_BENCH_MINILM=1`` (an epoch of
its pad-to-128 loop takes minutes here). Each ratio: median of 5 interleaved rounds
(``ratio`` fixture, ``conftest.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.benchmarks.conftest import info_enabled, minilm_enabled
from tests.benchmarks.sst2 import BATCH, MAX_LENGTH, HarnessSST2, reference_epoch

DYNAMIC_EPOCHS, PADDED_EPOCHS = 2, 4  # harness epochs per round (it is ~3x and ~8x faster than the references)
MODELS = [
    "tiny",
    pytest.param("minilm", marks=pytest.mark.skipif(not minilm_enabled(), reason="opt-in: HARNESS_BENCH_MINILM=1")),
]


@pytest.fixture(scope="module", params=MODELS)
def harness(request: pytest.FixtureRequest) -> HarnessSST2:
    return HarnessSST2.build(request.param)


def _setup(harness: HarnessSST2, threads: int, **extra: object) -> dict[str, object]:
    return {"model": harness.model_name, "rows": harness.rows, "batch": BATCH, "threads": threads, **extra}


def _epochs(harness: HarnessSST2, count: int) -> Callable[[], None]:
    """``count`` harness epochs per round: a round of the faster side lasts about as long as one of the
    reference's, so a change of load during the round reaches both alike."""

    def run() -> None:
        for _ in range(count):
            harness.epoch()

    return run


@pytest.mark.benchmark(group="training-throughput")
def test_harness_trains_faster_than_the_dynamic_padding_reference(ratio, harness, bench_threads):
    reference = reference_epoch(harness, pad_to_max_length=False)
    ratio.measure(
        f"throughput {harness.model_name}: harness / reference, dynamic padding",
        _epochs(harness, DYNAMIC_EPOCHS),
        reference,
        target=2.5,
        direction=">=",
        work=(DYNAMIC_EPOCHS * harness.rows, harness.rows),
        unit="examples/s",
        labels=("harness", "reference (dynamic padding)"),
        setup=_setup(harness, bench_threads, harness_epochs_per_round=DYNAMIC_EPOCHS)
        | {"harness_padding": round(harness.padded_tokens(), 3)},
    )


@pytest.mark.benchmark(group="training-throughput")
def test_harness_trains_faster_than_the_padded_reference(ratio, harness, bench_threads):
    reference = reference_epoch(harness, pad_to_max_length=True)
    ratio.measure(
        f"throughput {harness.model_name}: harness / reference, padded to {MAX_LENGTH}",
        _epochs(harness, PADDED_EPOCHS),
        reference,
        target=7.0,
        direction=">=",
        work=(PADDED_EPOCHS * harness.rows, harness.rows),
        unit="examples/s",
        labels=("harness", f"reference (pad to {MAX_LENGTH})"),
        setup=_setup(harness, bench_threads, harness_epochs_per_round=PADDED_EPOCHS),
        warmup=0,  # one round of the padded loop takes ~30 s (tiny) here; the median absorbs a first-round cost
    )


@pytest.mark.benchmark(group="training-overhead")
def test_data_pipeline_and_loop_add_at_most_ten_percent(ratio, harness, bench_threads):
    ratio.measure(
        f"epoch time {harness.model_name}: harness / bare loop on pre-built batches",
        harness.epoch,
        harness.bare_epoch,
        target=1.10,
        direction="<=",
        unit="s",
        labels=("harness epoch", "bare loop"),
        setup=_setup(harness, bench_threads),
    )


@pytest.mark.benchmark(group="training-throughput")
@pytest.mark.skipif(not info_enabled(), reason="informational: HARNESS_BENCH_INFO=1")
def test_what_is_left_against_a_reference_with_the_fused_optimizer(ratio, harness, bench_threads):
    """No target: how much of the speed-up is not the optimizer kernel (padding, data, loop)."""
    reference = reference_epoch(harness, pad_to_max_length=False, fused=True)
    ratio.measure(
        f"throughput {harness.model_name}: harness / reference with fused AdamW, dynamic padding",
        harness.epoch,
        reference,
        target=None,
        direction=">=",
        work=harness.rows,
        unit="examples/s",
        labels=("harness", "reference (dynamic padding, fused AdamW)"),
        setup=_setup(harness, bench_threads),
    )
