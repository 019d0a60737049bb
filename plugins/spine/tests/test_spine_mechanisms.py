"""Corpus versions: corpus 1 is today's generator, bit for bit."""

from __future__ import annotations

import hashlib
import json

from harness_spine.corpus import load_region
from harness_spine.generator import GeneratorConfig, generate, ground_truth

from harness.api import LoadContext

# Recorded from the generator before corpus 2 existed (commit 9597ac9), GeneratorConfig(reports=40, seed=7).
CORPUS_1_REPORTS = "3072dd9ad502f414ca5a36941fd0ac7dc3250493c1ed558ae00a9e6719891e1c"  # ids, text, released labels
CORPUS_1_TRUTH = "d9f98dfe35081d48501e4e31723b4d5d07410b30e5086b6fb5768ff6924f02fa"  # clean labels, segments
CORPUS_1_GROUND_TRUTH = "446fa008e1bcf4d6350a5f4d64e3ece5da8a3f2c57ab1036d231564e4f503039"  # without "generator"
# Dataset fingerprints (a hash of every column) for profile smoke, data seed 7, reports=40.
CORPUS_1_DATASETS = {
    "cervical": {"train": "spine-eccc053565097749", "dev": "spine-5c59a19f27e46e76", "test": "spine-7f7564e535141f86"},
    "lumbar": {"train": "spine-dc13e5e011f90b8f", "dev": "spine-471efbd6af783d1b", "test": "spine-790dc8af1a210c50"},
}


def _sha(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def test_corpus_1_is_todays_corpus_bit_for_bit() -> None:
    corpus = generate(GeneratorConfig(reports=40, seed=7))
    assert _sha([[s.report.report_id, s.report.text, s.report.labels] for s in corpus.reports]) == CORPUS_1_REPORTS
    assert _sha([[s.clean_labels, s.segments] for s in corpus.reports]) == CORPUS_1_TRUTH
    truth = ground_truth(corpus)
    truth.pop("generator")
    assert _sha(truth) == CORPUS_1_GROUND_TRUTH


def test_corpus_1_datasets_are_todays_datasets() -> None:
    ctx = LoadContext(profile="smoke", seed=7, options={"reports": "40"})
    for region, expected in CORPUS_1_DATASETS.items():
        assert {split: ds._fingerprint for split, ds in load_region(region, ctx).items()} == expected
