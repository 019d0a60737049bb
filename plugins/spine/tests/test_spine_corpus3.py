"""Corpus 3, the default: corpus 1's labels in the wider wording of ``wide.py``, read back truthfully."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from harness_spine.corpus import load_region
from harness_spine.generator import DEFAULT_CORPUS, Corpus, GeneratorConfig, generate
from harness_spine.segmenter import closing_sentences, score_segmentation, segment, segment_sentences, split_sentences
from harness_spine.userdata import write_reports

from harness.api import LoadContext
from harness.errors import ConfigError

TRANSFER = Path(__file__).parent / "fixtures" / "transfer" / "reports.jsonl"


@functools.cache
def _corpus(corpus: int, reports: int = 150, seed: int = 5) -> Corpus:
    return generate(GeneratorConfig(reports=reports, seed=seed, corpus=corpus))


def _text(corpus: Corpus) -> str:
    return "\n".join(s.report.text for s in corpus.reports)


def test_corpus_3_is_the_default_and_keeps_corpus_1_labels_and_rows() -> None:
    assert DEFAULT_CORPUS == 3 and GeneratorConfig().corpus == 3
    one, three = _corpus(1), _corpus(3)
    assert [s.clean_labels for s in one.reports] == [s.clean_labels for s in three.reports]
    assert [s.report.labels for s in one.reports] == [s.report.labels for s in three.reports]  # noise too
    assert [s.report.text for s in one.reports] != [s.report.text for s in three.reports]
    # the same levels are written up (the labelled ones), so the datasets have the same rows
    assert [set(s.segments) >= set(s.report.labels) for s in three.reports] == [True] * len(three.reports)


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("one-word level verdicts", r"^(?:Level )?[CL]\d[-/–\s]?(?:[CLST]?\d)?(?: level)?: (?:neg|nl|ok|WNL|clear)\.$"),
        ("side and severity abbreviations", r"\b(?:mod|sev|mld) (?:R|L|Rt|Lt)\b"),
        ("plural abbreviations", r"\b(?:NFs|DOCs|DBs)\b"),
        ("symbols", r" (?:\+|w/|->) "),
        ("abbreviations and their expansions", r"\bCCS\b.*\n(?:.*\n)*?.*central canal stenosis|\bNFN\b"),
        (
            "ranges and hyphenated grades",
            r"\b(?:mild-moderate|moderate-severe|mod-sev|mild/moderate|moderate to severe)\b",
        ),
        ("high-grade", r"\bhigh-grade\b"),
        ("the effect on the cord instead of a grade", r"\b(?:abutting|flattening|compressing) the cord\b"),
        ("the effect on the cauda equina", r"\bcrowding the (?:cauda equina|nerve roots)"),
        ("the effect on a nerve root", r"\b(?:contacting|compressing|abutting) the exiting (?:left |right )?[CL]\d"),
        ("the recess for subarticular stenosis", r"\blateral recess is \w+ narrowed"),
        ("the anatomy instead of the pathology", r"\bthe (?:left|right) foramen is \w+ narrowed"),
        (
            "a cause standing for a finding",
            r"[Ff]acet hypertrophy (?:causing|resulting in|with) \S+ (?:R |L |right |left )?",
        ),
        ("a finding stated once for a range of levels", r"facet \w+,? (?:from|at)? ?[CL]\d\S* (?:through|to) [CL]\d"),
        ("findings spread over several sentences", r"\. (?:This causes|There is resultant) "),
    ],
)
def test_corpus_3_writes_the_variety_of_real_reports(what: str, pattern: str) -> None:
    assert re.search(pattern, _text(_corpus(3)), re.MULTILINE), what


def test_per_side_statements_come_in_both_orders() -> None:
    text = _text(_corpus(3))
    assert re.search(r"\bleft\b[^.;,]*\band\b[^.;,]*\bright\b[^.;]*(?:NFN|foraminal)", text)
    assert re.search(r"\bright\b[^.;,]*\band\b[^.;,]*\bleft\b[^.;]*(?:NFN|foraminal)", text)


def test_impression_only_findings_reach_the_level_only_through_the_impression() -> None:
    corpus = _corpus(3)
    seen = 0
    for s in corpus.reports:
        findings = segment_sentences(s.report.text, s.report.region)
        whole = segment_sentences(s.report.text, s.report.region, impression=True)
        for level, pathology in s.impression_only:
            seen += 1
            added = whole[level][len(findings.get(level, [])) :]
            assert added and all(sentence in closing_sentences(s.report.text) for sentence in added)
            stated = ("left_foraminal", "right_foraminal") if pathology == "left_foraminal" else (pathology,)
            assert any(s.clean_labels[level][p] not in ("normal", "none") for p in stated)
    assert seen >= 20


DENIALS = {
    "canal_stenosis": re.compile(
        r"no (?:ccs|scs|canal|central|spinal) stenosis|canal (?:ok|nl|patent|is adequate|capacious)|cc patent"
        r"|no stenosis|canal and foramina patent|no neural compromise",
        re.IGNORECASE,
    ),
    "left_foraminal": re.compile(
        r"foramina (?:ok|open|patent|are patent|widely patent)|nfs patent|no nfn|no foraminal|nf ok|foramina are clear"
        r"|no stenosis|no neural compromise|canal and foramina patent",
        re.IGNORECASE,
    ),
    "disc": re.compile(r"no disc (?:bulge|herniation)|disc ok|normal disc", re.IGNORECASE),
}


def test_the_findings_never_deny_an_impression_only_finding() -> None:
    corpus = _corpus(3, reports=300, seed=9)
    checked = 0
    for s in corpus.reports:
        findings = segment_sentences(s.report.text, s.report.region)
        for level, pathology in s.impression_only:
            checked += 1
            text = " ".join(findings.get(level, []))
            assert not DENIALS[pathology].search(text), (s.report.report_id, level, pathology, text)
    assert checked >= 100


def test_the_segmenter_reads_corpus_3_exactly() -> None:
    corpus = _corpus(3, reports=200, seed=11)
    cases = [(segment_sentences(s.report.text, s.report.region, impression=True), s.segments) for s in corpus.reports]
    scores = score_segmentation(cases)
    assert scores["level_accuracy"] >= 0.99 and scores["f1"] >= 0.99, scores


def test_the_text_states_the_labels_an_n_gram_model_reads_them_back() -> None:
    """A truthfulness check: a logistic regression on word n-grams, trained on 300 reports'
    snippets, recovers the graded labels of 150 other reports well above always-normal."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = _corpus(3, reports=300, seed=1), _corpus(3, reports=150, seed=2)

    def rows(corpus: Corpus, pathology: str) -> tuple[list[str], list[str]]:
        snippets, labels = [], []
        for s in corpus.of_region("lumbar"):
            found = dict(segment(s.report.text, "lumbar", impression=True))
            for level, ls in s.report.labels.items():
                if pathology in ls:
                    snippets.append(found[level])
                    labels.append(ls[pathology])
        return snippets, labels

    for pathology in ("canal_stenosis", "left_foraminal", "subarticular_stenosis", "disc"):
        x, y = rows(train, pathology)
        xt, yt = rows(test, pathology)
        vec = CountVectorizer(ngram_range=(1, 3), token_pattern=r"[^\s]+").fit(x)
        model = LogisticRegression(max_iter=3000, C=10).fit(vec.transform(x), y)
        accuracy = float(np.mean(model.predict(vec.transform(xt)) == np.array(yt)))
        majority = max(yt.count(v) for v in set(yt)) / len(yt)
        assert accuracy >= majority + 0.1, (pathology, accuracy, majority)


def test_the_transfer_set_is_not_in_the_generator_s_templates() -> None:
    """No findings or impression sentence of four words or more of the hand-written transfer set
    is a sentence the generator writes (it measures transfer, not memory)."""
    generated = {
        " ".join(sentence.lower().split())
        for s in _corpus(3, reports=300, seed=0).reports
        for line in s.report.text.splitlines()
        for sentence in split_sentences(line)
    }
    checked = 0
    for line in TRANSFER.read_text(encoding="utf-8").splitlines():
        report = json.loads(line)
        levels = segment_sentences(report["text"], report["region"], impression=True)
        for sentence in {s for sentences in levels.values() for s in sentences}:  # findings and impression
            if len(sentence.split()) >= 4:
                checked += 1
                assert " ".join(sentence.lower().split()) not in generated, sentence
    assert checked >= 80


def test_impression_data_option(tmp_path: Path) -> None:
    config = GeneratorConfig(reports=30, seed=4)
    write_reports(tmp_path / "reports.jsonl", (s.report for s in generate(config).reports))
    built_in = load_region("lumbar", LoadContext(profile="smoke", seed=4, options={"reports": "30"}))
    user = load_region("lumbar", LoadContext(data_dir=tmp_path, seed=4))
    assert built_in["train"].to_dict() == user["train"].to_dict()  # user data reads the impression too
    findings_only = load_region("lumbar", LoadContext(data_dir=tmp_path, seed=4, options={"impression": "false"}))
    lengths = [len(a) - len(b) for a, b in zip(user["train"]["text"], findings_only["train"]["text"], strict=True)]
    assert min(lengths) >= 0 and max(lengths) > 0
    with pytest.raises(ConfigError, match="impression='maybe': expected one of true, false"):
        load_region("lumbar", LoadContext(data_dir=tmp_path, options={"impression": "maybe"}))
