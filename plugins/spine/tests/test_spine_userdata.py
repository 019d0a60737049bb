"""The user-data JSONL format: strict validation, privacy of errors, round trip."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from harness_spine.generator import GeneratorConfig, generate
from harness_spine.userdata import read_reports, resolve, write_reports

from harness.errors import DataError

CANARY = "CANARY-PHI-7731 Jane Q. Doe, MRN 0042"
TEXT = f"FINDINGS:\nC5-C6: Mild disc bulge. {CANARY}\n"


def _line(**overrides) -> str:
    record = {"report_id": "r1", "region": "cervical", "text": TEXT, "labels": {"C5-C6": {"disc": "bulge"}}}
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not _DROP})


_DROP = object()
GOOD = _line(report_id="r0")

BROKEN = {
    "malformed JSON": ([GOOD, '{"report_id": "r1", "text": "' + CANARY + '" "region"}'], 2, "invalid JSON"),
    "not an object": ([json.dumps([TEXT])], 1, "expected one JSON object"),
    "missing text": ([_line(text=_DROP)], 1, "field text: missing"),
    "empty text": ([_line(text="  \n")], 1, "field text: empty"),
    "text not a string": ([_line(text=[CANARY])], 1, "field text: expected a string, got a array"),
    "unknown region": ([_line(region="thoracic")], 1, "field region: unknown region (8 characters); expected one of"),
    "region wrong type": ([_line(region=3)], 1, "field region: unknown region (a number, not a string)"),
    "unknown level": ([_line(labels={"C9-C10": {"disc": "bulge"}})], 1, "field labels.C9-C10: unknown level"),
    "level of another region": ([_line(labels={"L4-L5": {"disc": "bulge"}})], 1, "is not a cervical level"),
    "level twice": (
        [_line(labels={"C5-6": {"disc": "bulge"}, "C5/C6": {}})],
        1,
        "field labels.C5/C6: level C5-C6 is given twice",
    ),
    "unknown pathology": (
        [_line(labels={"C5-C6": {"canal": "mild"}})],
        1,
        "field labels.C5-C6.canal: unknown pathology 'canal'",
    ),
    "pathology of another region": (
        [_line(region="lumbar", labels={"L4-L5": {"cord_signal": "present"}})],
        1,
        "not annotated in lumbar reports",
    ),
    "unknown severity": (
        [_line(report_id=f"r{i}") for i in range(11)]
        + [_line(report_id="x", labels={"C5-C6": {"canal_stenosis": "sever"}})],
        12,
        "field labels.C5-C6.canal_stenosis: unknown severity 'sever'; expected one of normal, mild, moderate, severe",
    ),
    "severity wrong type": (
        [_line(labels={"C5-C6": {"canal_stenosis": 2}})],
        1,
        "expected a string or null, got a number",
    ),
    "labels not an object": ([_line(labels=[CANARY])], 1, "field labels: expected an object"),
    "level not an object": ([_line(labels={"C5-C6": CANARY})], 1, "field labels.C5-C6: expected an object"),
    "duplicate id": (
        [GOOD, _line(report_id="r1"), _line(report_id="r0")],
        3,
        "field report_id: duplicate id 'r0' (first on line 1)",
    ),
    "empty id": ([_line(report_id="")], 1, "field report_id: expected a non-empty string"),
    "unknown field": ([_line(lables={})], 1, "field lables: unknown field; did you mean 'labels'?"),
    "bad split": ([_line(split="validation")], 1, "field split: unknown split 'validation'"),
    "split on some lines only": (
        [_line(report_id="a", split="train"), _line(report_id="b")],
        2,
        "field split: line 1 gives a split",
    ),
    "bad meta": ([_line(meta=CANARY)], 1, "field meta: expected an object, got a string"),
    "bad unlisted": (
        [_line(unlisted="Normal")],
        1,
        "field unlisted: unknown value 'Normal'; expected one of unannotated, normal; did you mean 'normal'?",
    ),
    "unlisted wrong type": ([_line(unlisted=True)], 1, "field unlisted: unknown value a boolean"),
    # text in a field meant for a word (a misplaced column): told by its length, never quoted
    "severity holding text": (
        [_line(labels={"C5-C6": {"canal_stenosis": f"severe; {CANARY}"}})],
        1,
        f"field labels.C5-C6.canal_stenosis: unknown severity (a string of {len(CANARY) + 8} characters)",
    ),
    "split holding text": ([_line(split=CANARY)], 1, f"unknown split (a string of {len(CANARY)} characters)"),
    "id holding text": (
        [_line(report_id=CANARY), _line(report_id=CANARY)],
        2,
        f"duplicate id (a string of {len(CANARY)} characters) (first on line 1)",
    ),
    "key holding text": ([_line(**{CANARY: 1})], 1, f"field <a key of {len(CANARY)} characters>: unknown field"),
    "level key holding text": (
        [_line(labels={CANARY: {}})],
        1,
        f"field labels.<a key of {len(CANARY)} characters>: unknown level (a string of {len(CANARY)} characters)",
    ),
    "pathology key holding text": (
        [_line(labels={"C5-C6": {CANARY: "mild"}})],
        1,
        f"field labels.C5-C6.<a key of {len(CANARY)} characters>: unknown pathology (a string of",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_name_file_line_and_field_but_never_text(tmp_path: Path, case: str) -> None:
    lines, number, expected = BROKEN[case]
    path = tmp_path / "reports.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_reports(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{number}: "), message
    assert expected in message, message
    assert "CANARY" not in message and "Doe" not in message and "bulge" not in message


def test_invalid_utf8_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + b'{"text": "\xff\xfe"}\n')
    with pytest.raises(DataError, match=r"reports.jsonl:2: not valid UTF-8"):
        read_reports(path)
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no reports"):
        read_reports(path)
    with pytest.raises(DataError, match="no such file"):
        resolve(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no reports.jsonl"):
        resolve(tmp_path / "empty")


def test_lenient_where_documented(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    line = _line(labels={"c5-6": {"disc": "bulge", "canal_stenosis": None}, "C6/C7": {}}, meta={"site": "a"})
    path.write_text("\n" + line + "\n\n", encoding="utf-8")
    (report,) = read_reports(path)
    assert report.labels == {"C5-C6": {"disc": "bulge"}, "C6-C7": {}}
    assert report.split is None
    assert resolve(tmp_path) == path
    nested = tmp_path / "x" / "spine"
    nested.mkdir(parents=True)
    (nested / "reports.jsonl").write_text(line + "\n", encoding="utf-8")
    assert resolve(tmp_path / "x") == nested / "reports.jsonl"


def test_generated_corpus_round_trips_exactly(tmp_path: Path) -> None:
    corpus = generate(GeneratorConfig(reports=40, seed=9, noise=0.1))
    path = tmp_path / "reports.jsonl"
    assert write_reports(path, (s.report for s in corpus.reports)) == 80
    assert read_reports(path) == [s.report for s in corpus.reports]
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_byte_order_mark_is_accepted_and_stripped(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + GOOD.encode() + b"\r\n" + _line(report_id="r2").encode() + b"\r\n")
    assert [r.report_id for r in read_reports(path)] == ["r0", "r2"]
    path.write_bytes(codecs.BOM_UTF8)
    with pytest.raises(DataError, match="no reports"):
        read_reports(path)


def test_a_byte_order_mark_inside_the_file_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_bytes(GOOD.encode() + b"\n" + codecs.BOM_UTF8 + _line(report_id="r2").encode() + b"\n")
    with pytest.raises(DataError) as info:
        read_reports(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: a byte-order mark") and "concatenated" in message, message
    assert "CANARY" not in message


def test_invalid_utf8_says_where_and_how_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    latin1 = _line(report_id="r2", text="cafe C5-6").encode().replace(b"cafe", b"caf\xe9")  # "é" as Latin-1
    path.write_bytes(GOOD.encode() + b"\n" + latin1 + b"\n")
    with pytest.raises(DataError) as info:
        read_reports(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: not valid UTF-8") and "save the file as UTF-8" in message, message


def test_the_unlisted_field_is_read_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_text(_line(unlisted="normal") + "\n" + _line(report_id="r2", unlisted="unannotated") + "\n" + GOOD)
    reports = read_reports(path)
    assert [r.unlisted for r in reports] == ["normal", "unannotated", None]
    write_reports(tmp_path / "again.jsonl", reports)
    assert read_reports(tmp_path / "again.jsonl") == reports
    assert '"unlisted"' not in (tmp_path / "again.jsonl").read_text(encoding="utf-8").splitlines()[2]


def test_label_levels_are_read_by_the_segmenter_s_spelling_rules(tmp_path: Path) -> None:
    path = tmp_path / "reports.jsonl"
    path.write_text(_line(labels={"C5\u20116": {"disc": "bulge"}, "c6\u22127": {}}) + "\n", encoding="utf-8")
    assert read_reports(path)[0].labels == {"C5-C6": {"disc": "bulge"}, "C6-C7": {}}
