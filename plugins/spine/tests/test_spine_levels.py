"""Level vocabulary and spelling normalisation."""

from __future__ import annotations

import pytest
from harness_spine.levels import (
    REGION_LEVELS,
    SPELLING_STYLES,
    find_levels,
    normalize_level,
    spell,
    unreadable_levels,
)


@pytest.mark.parametrize(
    ("spelling", "level"),
    [
        ("C5-C6", "C5-C6"),
        ("C5-6", "C5-C6"),
        ("C5/C6", "C5-C6"),
        ("C5/6", "C5-C6"),
        ("C5–C6", "C5-C6"),
        ("C5—6", "C5-C6"),
        ("C5 C6", "C5-C6"),
        ("c5-6", "C5-C6"),
        (" C5-C6: ", "C5-C6"),
        ("C7-T1", "C7-T1"),
        ("C7-1", "C7-T1"),
        ("L5-S1", "L5-S1"),
        ("L5/S1", "L5-S1"),
        ("l5/s1", "L5-S1"),
        ("L4 on L5", "L4-L5"),
        ("T12-L1", "T12-L1"),
    ],
)
def test_spelling_variants_normalise(spelling: str, level: str) -> None:
    assert normalize_level(spelling) == level


@pytest.mark.parametrize("text", ["C5-C7", "C6", "C5 6", "L5-L4x", "S1-S2", "C5-C6 and C6-C7", ""])
def test_non_levels_are_rejected(text: str) -> None:
    assert normalize_level(text) is None


def test_region_restricts_levels() -> None:
    assert normalize_level("L4-5", region="lumbar") == "L4-L5"
    assert normalize_level("L4-5", region="cervical") is None
    assert normalize_level("T1-T2", region="cervical") is None


def test_find_levels_expands_ranges_and_keeps_order() -> None:
    found = find_levels("Bulges from C3-C4 through C6-7, worst at C5/6.")
    assert found == ["C3-C4", "C4-C5", "C5-C6", "C6-C7"]
    assert find_levels("C2-3 and C7-T1 are unremarkable.") == ["C2-C3", "C7-T1"]


def test_bare_numbers_need_a_region() -> None:
    text = "At the 4-5 level, there is a bulge measuring 5-6 mm."
    assert find_levels(text) == []
    assert find_levels(text, region="lumbar") == ["L4-L5"]


def test_sequences_and_vertebrae_are_not_levels() -> None:
    assert find_levels("T1/T2 hyperintense lesion in the C6 vertebral body; T2-weighted images.") == []
    assert find_levels("Sagittal T1, T2 and STIR images.") == []


@pytest.mark.parametrize("style", SPELLING_STYLES)
def test_every_spelling_style_round_trips(style: str) -> None:
    for levels in REGION_LEVELS.values():
        for level in levels:
            assert normalize_level(spell(level, style)) == level


@pytest.mark.parametrize(
    "dash", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212", "\ufe63", "\uff0d"]
)
def test_every_unicode_hyphen_and_dash_reads_as_a_hyphen(dash: str) -> None:
    assert normalize_level(f"C5{dash}6") == "C5-C6"
    assert normalize_level(f"L5{dash}S1", region="lumbar") == "L5-S1"
    assert find_levels(f"Bulges from C3{dash}4 through C5{dash}6.") == ["C3-C4", "C4-C5", "C5-C6"]
    assert find_levels(f"At the 4{dash}5 level.", region="lumbar") == ["L4-L5"]


def test_slash_look_alikes_read_as_a_slash() -> None:
    assert normalize_level("C5\u2044C6") == normalize_level("C5\uff0f6") == "C5-C6"


@pytest.mark.parametrize(
    ("text", "levels"),
    [
        ("C4-5, 5-6 and 6-7: Disc osteophyte complexes.", ["C4-C5", "C5-C6", "C6-C7"]),
        ("L1-2, 2-3, and 3-4 are normal.", ["L1-L2", "L2-L3", "L3-L4"]),
        ("Disc desiccation at L3-4, 4-5 and 5-S1.", ["L3-L4", "L4-L5", "L5-S1"]),
        ("C6-7 and 7-T1: Normal.", ["C6-C7", "C7-T1"]),
        ("L4-5 & 5-1: Bulges.", ["L4-L5", "L5-S1"]),
        ("C2-3 through 5-6: Unremarkable.", ["C2-C3", "C3-C4", "C4-C5", "C5-C6"]),
        ("C4\u20115, 5\u20116 and 6\u20117: Bulges.", ["C4-C5", "C5-C6", "C6-C7"]),
        ("L4L5 and L5S1: Bulges.", ["L4-L5", "L5-S1"]),
    ],
)
def test_list_forms_name_every_level(text: str, levels: list[str]) -> None:
    assert find_levels(text) == levels


def test_bare_lists_with_level_need_a_region_and_numbers_with_units_are_not_levels() -> None:
    text = "Facet arthropathy at the 3-4 and 4-5 levels."
    assert find_levels(text) == []
    assert find_levels(text, region="lumbar") == ["L3-L4", "L4-L5"]
    assert find_levels("Protrusion at C5-6, 2-3 mm in size, and C6-7, 3-4 mm.") == ["C5-C6", "C6-C7"]
    assert find_levels("At L4-5, 2-3 mm retrolisthesis.") == ["L4-L5"]


@pytest.mark.parametrize("text", ["C5-7: Anterior fusion.", "L5-L6: Transitional.", "S1-2 Tarlov cyst.", "C6-5"])
def test_unreadable_levels_are_reported(text: str) -> None:
    assert find_levels(text) == []
    assert unreadable_levels(text)


@pytest.mark.parametrize("text", ["C5-6: Bulge.", "T1/T2 hyperintense.", "T2-weighted images.", "a 5-6 mm cyst"])
def test_readable_levels_and_sequences_are_not_unreadable(text: str) -> None:
    assert not unreadable_levels(text)
