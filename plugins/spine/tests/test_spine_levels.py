"""Level vocabulary and spelling normalisation."""

from __future__ import annotations

import pytest
from harness_spine.levels import REGION_LEVELS, SPELLING_STYLES, find_levels, normalize_level, spell


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
