"""Corpus versions: corpus 1 is the original generator, bit for bit; corpus 2's mechanisms do what they say."""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
from pathlib import Path

import pytest
from harness_spine import mechanisms, plugin
from harness_spine.corpus import load_region
from harness_spine.generator import Corpus, GeneratorConfig, generate, ground_truth
from harness_spine.render import DISC_EFFECT
from harness_spine.splits import assign_splits
from harness_spine.userdata import read_reports, write_reports

from harness.api import MISSING_LABEL, LoadContext
from harness.errors import ConfigError

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
    corpus = generate(GeneratorConfig(reports=40, seed=7, corpus=1))
    assert _sha([[s.report.report_id, s.report.text, s.report.labels] for s in corpus.reports]) == CORPUS_1_REPORTS
    assert _sha([[s.clean_labels, s.segments] for s in corpus.reports]) == CORPUS_1_TRUTH
    truth = ground_truth(corpus)
    truth.pop("generator")
    assert _sha(truth) == CORPUS_1_GROUND_TRUTH


def test_corpus_1_datasets_are_todays_datasets() -> None:
    ctx = LoadContext(profile="smoke", seed=7, options={"reports": "40", "corpus": "1"})
    for region, expected in CORPUS_1_DATASETS.items():
        assert {split: ds._fingerprint for split, ds in load_region(region, ctx).items()} == expected


# Corpus 2: its mechanisms, and what it keeps from corpus 1.

CANAL_WORDS = re.compile(r"\bcanal\b|\bSCS\b|central stenosis|thecal sac", re.IGNORECASE)
GRADE_WORDS = re.compile(
    r"\b(?:mild|moderate|severe|marked|minimal|slight|borderline)(?:ly)?\b|\bmildly\b|\bseverely\b", re.IGNORECASE
)


@functools.cache
def _corpus(**kwargs) -> Corpus:
    return generate(GeneratorConfig(**{"reports": 60, "seed": 3, **kwargs}))


def test_corpus_2_keeps_corpus_1_labels_and_splits() -> None:
    one, two = _corpus(corpus=1), _corpus(corpus=2)
    assert [s.clean_labels for s in one.reports] == [s.clean_labels for s in two.reports]
    for region in ("cervical", "lumbar"):
        splits = assign_splits([s.report for s in one.of_region(region)], region, seed=3)
        assert {s.report.report_id: s.report.split for s in two.of_region(region)} == splits
        for a, b in zip(one.of_region(region), two.of_region(region), strict=True):
            scarce = set() if b.report.split != "train" else set(mechanisms.SCARCE)
            for level, labels in a.report.labels.items():  # only scarce labels on train go missing
                assert {p: v for p, v in labels.items() if p not in scarce} == {
                    p: v for p, v in b.report.labels[level].items() if p not in scarce
                }
                assert b.report.labels[level].items() <= labels.items()


def test_corpus_2_without_its_mechanisms_is_corpus_1_with_splits_written() -> None:
    one, off = _corpus(corpus=1), _corpus(corpus=2, scarce=(), implied=0.0)
    assert [(s.report.text, s.report.labels, s.segments) for s in one.reports] == [
        (s.report.text, s.report.labels, s.segments) for s in off.reports
    ]
    assert all(s.report.split in ("train", "dev", "test") for s in off.reports)
    assert all(s.report.split is None for s in one.reports)


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_scarce_pathologies_are_annotated_on_a_fraction_of_train_reports_only(fraction: float) -> None:
    corpus = _corpus(corpus=2, scarce=("canal_stenosis", "subarticular_stenosis"), scarce_fraction=fraction)
    for region in ("cervical", "lumbar"):
        reports = corpus.of_region(region)
        train = [s.report for s in reports if s.report.split == "train"]
        for name in ("canal_stenosis", "subarticular_stenosis", "disc", "hemangioma"):
            if name == "subarticular_stenosis" and region == "cervical":
                continue
            annotated = [r for r in train if any(name in labels for labels in r.labels.values())]
            if name in ("disc", "hemangioma"):
                assert len(annotated) == len(train)  # dense
            else:
                assert len(annotated) == mechanisms.annotated_reports(len(train), fraction) == round(fraction * 42)
        summary = mechanisms.summary(reports, region)["labelled_fraction"]
        canal = summary[f"{region}.canal_stenosis"]
        assert canal["train"] < fraction + 0.1 and canal["dev"] > 0.9 and canal["test"] > 0.9
        assert summary[f"{region}.disc"]["train"] > 0.9


def test_the_loader_sees_scarce_train_labels_and_dense_dev_and_test() -> None:
    ctx = LoadContext(profile="smoke", seed=3, options={"reports": "60", "corpus": "2", "scarce": "right_foraminal"})
    splits = load_region("cervical", ctx)
    share = {s: sum(v != MISSING_LABEL for v in ds["right_foraminal"]) / len(ds) for s, ds in splits.items()}
    assert share["train"] < 0.2 and share["dev"] > 0.9 and share["test"] > 0.9
    assert sum(v != MISSING_LABEL for v in splits["train"]["canal_stenosis"]) / len(splits["train"]) > 0.9


def _effects(region: str, grade: str) -> list[str]:
    return [e.lower() for e in DISC_EFFECT[region][grade]]


def test_implied_canal_grades_are_stated_only_through_the_disc() -> None:
    checked = 0
    for s in _corpus(corpus=2, implied=1.0).reports:
        region = s.report.region
        for level, labels in s.clean_labels.items():
            narrowed = labels["disc"] != "none" and labels["canal_stenosis"] != "normal"
            assert (level in s.implied) == narrowed
            if not narrowed:
                continue
            checked += 1
            sentences = s.segments[level]
            assert not any(CANAL_WORDS.search(t) for t in sentences), sentences
            grade = labels["canal_stenosis"]
            stating = [t for t in sentences if any(e in t.lower() for e in _effects(region, grade))]
            assert len(stating) == 1 and not GRADE_WORDS.search(stating[0]), sentences
            others = [e for g in ("mild", "moderate", "severe") if g != grade for e in _effects(region, g)]
            assert not any(e in t.lower() for t in sentences for e in others)
    assert checked > 50


def test_without_implied_the_canal_is_named_at_every_narrowed_level() -> None:
    for s in _corpus(corpus=2, implied=0.0).reports:
        assert not s.implied
        for level, labels in s.clean_labels.items():
            if labels["canal_stenosis"] != "normal":
                assert any(CANAL_WORDS.search(t) for t in s.segments[level]) or any(
                    "narrow" in t.lower() and "canal" in t.lower() for t in s.segments[level]
                )


def test_implied_is_a_probability_per_level() -> None:
    levels = mechanisms.summary(_corpus(corpus=2, implied=0.5).of_region("cervical"), "cervical")["implied"]
    assert 0.3 < levels["levels"] / levels["of"] < 0.7


def test_ground_truth_of_corpus_2_keeps_the_planted_structure() -> None:
    one, two = ground_truth(_corpus(corpus=1)), ground_truth(_corpus(corpus=2))
    assert two["groups"] == one["groups"] and two["model"] == one["model"]
    assert two["dependence_clean"] == one["dependence_clean"]  # same clean labels, same planted structure
    assert two["generator"]["corpus"] == 2 and two["generator"]["scarce"] == list(mechanisms.SCARCE)
    assert "mechanisms" not in one and "scarce" not in one["generator"]
    for region in ("cervical", "lumbar"):
        fractions = two["mechanisms"][region]["labelled_fraction"]
        assert fractions[f"{region}.canal_stenosis"]["train"] < 0.2 < fractions[f"{region}.disc"]["train"]
        implied = two["mechanisms"][region]["implied"]
        assert implied["levels"] == implied["of"] > 0  # implied=1 by default
    json.dumps(two)


def test_a_generated_corpus_2_file_loads_as_the_built_in_corpus(tmp_path: Path) -> None:
    config = GeneratorConfig(reports=40, seed=4, noise=0.05, relatedness=0.8, corpus=2)
    write_reports(tmp_path / "reports.jsonl", (s.report for s in generate(config).reports))
    built_in = load_region("cervical", LoadContext(profile="smoke", seed=4, options={"reports": "40", "corpus": "2"}))
    # the file's splits, not the seed's; findings-only snippets, as corpus 2 is built
    user = load_region("cervical", LoadContext(data_dir=tmp_path, seed=99, options={"impression": "false"}))
    for split in ("train", "dev", "test"):
        assert built_in[split].to_dict() == user[split].to_dict()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"corpus": "4"}, "data option corpus='4': expected one of 1, 2, 3"),
        (
            {"corpus": "2", "scarce": "canal_stenosi"},
            "unknown pathology 'canal_stenosi'; did you mean 'canal_stenosis'",
        ),
        ({"corpus": "2", "scarce": "disc,disc"}, "named twice"),
        ({"corpus": "2", "scarce_fraction": "0"}, "scarce_fraction must be above 0"),
        ({"corpus": "2", "scarce_fraction": "few"}, "scarce_fraction='few': expected float"),
        ({"corpus": "2", "implied": "1.5"}, "implied must be between 0 and 1"),
        ({"corpus": "1", "scarce": "disc"}, "scarce only applies to corpus 2"),
        ({"corpus": "1", "implied": "0.5", "scarce_fraction": "0.2"}, "implied, scarce_fraction only applies"),
        ({"spine.scarce_fractio": "0.2"}, "did you mean 'scarce_fraction'"),
        ({"spine.implid": "0.2"}, "did you mean 'implied'"),
    ],
)
def test_bad_corpus_options_are_config_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_region("cervical", LoadContext(profile="smoke", options={"reports": "5", **options}))


def test_corpus_options_are_for_the_synthetic_corpus_only(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only applies to the synthetic"):
        load_region("cervical", LoadContext(data_dir=tmp_path, options={"scarce": "disc"}))
    assert mechanisms.parse_scarce("none") == () == mechanisms.parse_scarce(" None ")
    assert mechanisms.parse_scarce("disc, hemangioma") == ("disc", "hemangioma")


def test_generator_config_refuses_corpus_2_knobs_on_corpus_1() -> None:
    with pytest.raises(ConfigError, match="implied only apply to corpus 2"):
        GeneratorConfig(corpus=1, implied=0.5)
    with pytest.raises(ConfigError, match="corpus must be one of 1, 2"):
        GeneratorConfig(corpus=0)


def _generate_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness")
    plugin.register_commands(subparsers=parser.add_subparsers(dest="command"))
    return parser.parse_args(["spine", "generate", *argv])


def test_generate_command_takes_the_corpus_options(tmp_path: Path) -> None:
    args = _generate_args(["--out", str(tmp_path), "--reports", "20", "--region", "lumbar", "--corpus", "2",
                           "--scarce", "disc", "--scarce-fraction", "0.25", "--implied", "0.5"])  # fmt: skip
    assert args.func(args) == 0
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert {k: truth["generator"][k] for k in ("corpus", "scarce", "scarce_fraction", "implied")} == {
        "corpus": 2, "scarce": ["disc"], "scarce_fraction": 0.25, "implied": 0.5,
    }  # fmt: skip
    reports = read_reports(tmp_path / "reports.jsonl")
    assert {r.split for r in reports} == {"train", "dev", "test"}
    train_with_disc = [r for r in reports if r.split == "train" and any("disc" in lv for lv in r.labels.values())]
    assert len(train_with_disc) == mechanisms.annotated_reports(14, 0.25) == 4
    with pytest.raises(ConfigError, match="--scarce, --implied only apply to --corpus 2"):
        bad = _generate_args(["--out", str(tmp_path), "--force", "--corpus", "1", "--scarce", "disc", "--implied", "0"])
        bad.func(bad)
    with pytest.raises(ConfigError, match="did you mean 'hemangioma'"):
        bad = _generate_args(["--out", str(tmp_path), "--force", "--corpus", "2", "--scarce", "hemangiom"])
        bad.func(bad)
