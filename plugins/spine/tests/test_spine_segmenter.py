"""Report -> per-level snippets, measured on the synthetic corpus and on hand-written reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_spine.generator import GeneratorConfig, generate
from harness_spine.levels import find_levels
from harness_spine.segmenter import findings_text, score_segmentation, segment, segment_sentences, split_sentences

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def _fixture(name: str) -> tuple[str, dict]:
    text = (FIXTURES / f"{name}.txt").read_bytes().decode("utf-8")  # line endings as written (CRLF kept)
    return text, json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _show(label: str, scores: dict[str, float]) -> None:
    print(
        f"\nsegmenter {label}: level accuracy {scores['level_accuracy']:.4f} over {int(scores['levels'])} levels, "
        f"sentence assignments P {scores['precision']:.4f} R {scores['recall']:.4f} F1 {scores['f1']:.4f}"
    )


def test_accuracy_on_the_synthetic_corpus() -> None:
    corpus = generate(GeneratorConfig(reports=200, seed=123, corpus=1))  # findings only; corpus 3: test_spine_corpus3
    scores = score_segmentation((segment_sentences(s.report.text, s.report.region), s.segments) for s in corpus.reports)
    _show("synthetic (400 reports)", scores)
    assert scores["level_accuracy"] >= 0.98
    assert scores["f1"] >= 0.98


def test_accuracy_on_hand_written_reports() -> None:
    assert len(FIXTURE_NAMES) >= 5
    cases = []
    for name in FIXTURE_NAMES:
        text, truth = _fixture(name)
        cases.append((segment_sentences(text, truth["region"]), truth["levels"]))
        _show(name, score_segmentation([cases[-1]]))
    scores = score_segmentation(cases)
    _show(f"hand-written ({len(cases)} reports)", scores)
    assert scores["level_accuracy"] >= 0.9
    assert scores["f1"] >= 0.9


def test_the_windows_fixture_keeps_its_line_endings() -> None:
    assert b"\r\n" in (FIXTURES / "crlf_tabs_cervical.txt").read_bytes()  # see fixtures/.gitattributes


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_levels_are_all_found(name: str) -> None:
    text, truth = _fixture(name)
    assert set(segment_sentences(text, truth["region"])) == set(truth["levels"])


def test_impression_and_history_are_not_findings() -> None:
    text = "HISTORY: Pain at C5-C6.\n\nFINDINGS:\nC5-C6: Mild disc bulge.\n\nIMPRESSION:\n1. Bulges at C5-C6, C6-C7.\n"
    assert segment(text, "cervical") == [("C5-C6", "C5-C6: Mild disc bulge.")]
    assert "IMPRESSION" not in findings_text(text)


def test_sentences_follow_the_current_level_until_a_general_topic() -> None:
    text = (
        "FINDINGS: Alignment is normal. At C4-C5, mild bulge. No canal stenosis. "
        "Small hemangioma in the C5 vertebral body. Paraspinal soft tissues are normal. The cord is normal."
    )
    assert segment_sentences(text, "cervical") == {
        "C4-C5": ["At C4-C5, mild bulge.", "No canal stenosis.", "Small hemangioma in the C5 vertebral body."]
    }


def test_remaining_levels_sentence_goes_to_unnamed_levels() -> None:
    text = "FINDINGS:\nL4-5: Moderate canal stenosis.\nL5-S1: Mild bulge.\nThe remaining levels are unremarkable."
    got = segment_sentences(text, "lumbar")
    assert got["L1-L2"] == got["L2-L3"] == got["L3-L4"] == ["The remaining levels are unremarkable."]
    assert got["L4-L5"] == ["L4-5: Moderate canal stenosis."]


def test_combined_levels_go_to_each_level() -> None:
    got = dict(segment("C3-C4 and C4-C5: Unremarkable.\nC5/6 through C7/T1: Mild bulges.", "cervical"))
    assert got["C3-C4"] == got["C4-C5"] == "C3-C4 and C4-C5: Unremarkable."
    assert got["C5-C6"] == got["C6-C7"] == got["C7-T1"] == "C5/6 through C7/T1: Mild bulges."


def test_sentence_splitting_keeps_abbreviations_and_drops_bullets() -> None:
    assert split_sentences("1. Mild narrowing (approx. 2 mm), e.g. on the left. No stenosis.") == [
        "Mild narrowing (approx. 2 mm), e.g. on the left.",
        "No stenosis.",
    ]


def test_list_forms_give_each_listed_level_the_sentence() -> None:
    text = "FINDINGS:\nC4-5, 5-6 and 6-7: Disc osteophyte complexes with moderate canal stenosis.\n"
    sentence = "C4-5, 5-6 and 6-7: Disc osteophyte complexes with moderate canal stenosis."
    assert segment_sentences(text, "cervical") == {"C4-C5": [sentence], "C5-C6": [sentence], "C6-C7": [sentence]}


@pytest.mark.parametrize("dash", ["\u2010", "\u2011", "\u2012", "\u2212", "\uff0d"])
def test_a_level_with_a_unicode_hyphen_keeps_its_own_sentences(dash: str) -> None:
    text = f"FINDINGS:\nC4-5: Mild bulge.\nC5{dash}6: Moderate canal stenosis. Severe left foraminal narrowing.\n"
    assert segment_sentences(text, "cervical") == {
        "C4-C5": ["C4-5: Mild bulge."],
        "C5-C6": [f"C5{dash}6: Moderate canal stenosis.", "Severe left foraminal narrowing."],
    }


@pytest.mark.parametrize("heading", ["C5-7", "C6-5", "C5\u20117"])
def test_an_unreadable_level_never_lends_its_text_to_another_level(heading: str) -> None:
    text = f"FINDINGS:\nC4-5: Mild bulge.\n{heading}: Anterior fusion. Solid arthrodesis.\nC7-T1: Normal.\n"
    assert segment_sentences(text, "cervical") == {"C4-C5": ["C4-5: Mild bulge."], "C7-T1": ["C7-T1: Normal."]}


@pytest.mark.parametrize("bullet", ["\u2013", "\u2014", "\u2011", "\u25aa", "\u25cf"])
def test_unicode_bullets_are_dropped(bullet: str) -> None:
    text = f"FINDINGS:\n{bullet} C5-6: Mild bulge. No stenosis.\n{bullet} C6-7: Normal.\n"
    assert segment_sentences(text, "cervical") == {
        "C5-C6": ["C5-6: Mild bulge.", "No stenosis."],
        "C6-C7": ["C6-7: Normal."],
    }


ONE_LINE_SECTIONS = (
    "HISTORY: Back pain.\nCOMPARISON: None.\nL3-4: Normal.\nL4-5: Disc bulge with mild canal stenosis.\n"
    "L5-S1: Small protrusion.\nIMPRESSION: Mild degenerative change.\n"
)


def test_a_section_header_covers_only_its_own_line() -> None:
    assert segment_sentences(ONE_LINE_SECTIONS, "lumbar") == {
        "L3-L4": ["L3-4: Normal."],
        "L4-L5": ["L4-5: Disc bulge with mild canal stenosis."],
        "L5-S1": ["L5-S1: Small protrusion."],
    }


def test_a_header_alone_on_its_line_runs_to_a_blank_line_or_a_level() -> None:
    text = (
        "EXAM: MRI lumbar spine.\nHISTORY:\nBack pain at L4-5.\nL4-5: Bulge.\nCOMPARISON:\nMRI 2019, L5-S1.\n\n"
        "L5-S1: Normal."
    )
    assert segment_sentences(text, "lumbar") == {"L4-L5": ["L4-5: Bulge."], "L5-S1": ["L5-S1: Normal."]}


def test_a_hard_wrapped_header_line_stays_in_its_section() -> None:
    text = "TECHNIQUE: Axial images from the L3-4 disc through the\nL5-S1 disc were obtained.\nL4-5: Bulge.\n"
    assert "were obtained" not in findings_text(text)
    assert segment_sentences(text, "lumbar") == {"L4-L5": ["L4-5: Bulge."]}


def test_text_after_a_short_section_inside_the_findings_is_findings() -> None:
    text = "FINDINGS:\nL3-4: Normal.\nComparison: MRI from 2019.\nL4-5: Bulge.\n\nIMPRESSION: Stenosis at L5-S1."
    assert segment_sentences(text, "lumbar") == {"L3-L4": ["L3-4: Normal."], "L4-L5": ["L4-5: Bulge."]}


@pytest.mark.parametrize("header", ["Impression", "IMPRESSION", "Conclusion", "Findings"])
def test_a_capitalised_header_after_a_sentence_starts_a_section(header: str) -> None:
    text = f"History: Pain at L3-4. Comparison: None. L4-5: Bulge. {header}: Stenosis at L5-S1."
    got = segment_sentences(text, "lumbar")
    if header == "Findings":
        assert got == {"L5-S1": ["Stenosis at L5-S1."]}
    else:
        assert got == {"L4-L5": ["L4-5: Bulge."]}


@pytest.mark.parametrize("name", FIXTURE_NAMES)
@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_line_endings_do_not_change_the_segmentation(name: str, newline: str) -> None:
    text, truth = _fixture(name)
    text = text.replace("\r\n", "\n")
    assert segment_sentences(text.replace("\n", newline), truth["region"]) == segment_sentences(text, truth["region"])


@pytest.mark.parametrize(
    ("region", "line"),
    [
        ("lumbar", "L5-S1: Grade 1 anterolisthesis. Bilateral pars fractures are present. Severe bilateral neural "
                   "foraminal narrowing. Mild canal stenosis."),
        ("cervical", "C4-5: Slight retrolisthesis. Subchondral degenerative marrow signal change at the endplates. "
                     "Moderate narrowing of the central canal. Mild right foraminal narrowing."),
        ("cervical", "- C6/7: Disc osteophyte complex. Prevertebral soft tissue swelling. Scoliosis. No stenosis."),
        ("lumbar", "Level L4-5: Bulge. Paraspinal muscle atrophy. Visualized facet effusions. Mild canal stenosis."),
        ("lumbar", "L3-4 and L4-5: Modic type 1 marrow edema, no fracture. Alignment is normal here. Mild stenosis."),
    ],
)  # fmt: skip
def test_other_anatomy_on_a_level_line_stays_with_the_level(region: str, line: str) -> None:
    text = f"FINDINGS:\nAlignment: Normal.\n{line}\nParaspinal soft tissues: Unremarkable.\n"
    got = segment_sentences(text, region)
    sentences = split_sentences(line)
    assert got == dict.fromkeys(find_levels(line, region), sentences)


def test_a_level_s_own_bone_findings_in_prose_stay_with_the_level() -> None:
    text = (
        "FINDINGS: Alignment is normal. No acute fracture. At L4-5 there is a bulge. There is a Schmorl's node with "
        "surrounding marrow edema. Bilateral pars fractures are present. There is a prevertebral osteophyte at this "
        "level. Moderate canal stenosis. At L5-S1 there is a protrusion. No fracture. Bone marrow signal is otherwise "
        "normal. The cord is normal."
    )
    assert segment_sentences(text, "lumbar") == {
        "L4-L5": [
            "At L4-5 there is a bulge.",
            "There is a Schmorl's node with surrounding marrow edema.",
            "Bilateral pars fractures are present.",
            "There is a prevertebral osteophyte at this level.",
            "Moderate canal stenosis.",
        ],
        "L5-S1": ["At L5-S1 there is a protrusion."],
    }


def test_a_byte_order_mark_before_the_first_header_is_ignored() -> None:
    text = "\ufeffHISTORY: Neck pain at C4-5.\nC5-6: Bulge.\n"
    assert segment_sentences(text, "cervical") == {"C5-C6": ["C5-6: Bulge."]}


def test_the_impression_s_level_sentences_join_the_snippet_only_with_impression() -> None:
    text = (
        "FINDINGS:\nC5-C6: Disc bulge.\nThe remaining levels are unremarkable.\n\n"
        "IMPRESSION:\n1. Severe canal stenosis at C5-6. 2. Mild canal stenosis at C3-C4.\n"
        "Multilevel spondylosis.\n\nRECOMMENDATION:\nConsider surgical consult for C6-C7."
    )
    findings = dict(segment(text, "cervical"))
    assert findings["C5-C6"] == "C5-C6: Disc bulge."
    assert findings["C3-C4"] == findings["C6-C7"] == "The remaining levels are unremarkable."
    whole = dict(segment(text, "cervical", impression=True))
    assert whole["C5-C6"] == "C5-C6: Disc bulge. Severe canal stenosis at C5-6."
    # a level the impression names is not one of "the remaining levels"; a second list number on a line is dropped
    assert whole["C3-C4"] == "Mild canal stenosis at C3-C4."
    # a recommendation is not a finding, nor part of the impression
    assert whole["C6-C7"] == "The remaining levels are unremarkable."
