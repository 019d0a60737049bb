"""The per-level datasets: columns, splits by report, sources, options and the cache."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest
from harness_spine.corpus import CORPUS_PRESETS, load_region, load_split
from harness_spine.generator import GeneratorConfig, generate
from harness_spine.schema import region_pathologies
from harness_spine.splits import assign_splits
from harness_spine.userdata import write_reports

from harness.api import MISSING_LABEL, LoadContext
from harness.errors import ConfigError, DataError

SMALL = {"reports": "60"}


def _ctx(**kwargs) -> LoadContext:
    kwargs.setdefault("profile", "smoke")
    kwargs.setdefault("options", SMALL)
    return LoadContext(**kwargs)


def test_generator_defaults_are_the_default_preset() -> None:
    defaults = GeneratorConfig()
    assert {k: getattr(defaults, k) for k in CORPUS_PRESETS["default"]} == CORPUS_PRESETS["default"]


def test_columns_and_labels() -> None:
    splits = load_region("lumbar", _ctx())
    assert set(splits) == {"train", "dev", "test"}
    names = [p.name for p in region_pathologies("lumbar")]
    train = splits["train"]
    assert train.column_names == ["text", "report_id", "level", *names]
    for name, p in zip(names, region_pathologies("lumbar"), strict=True):
        values = set(train[name])
        assert values <= set(range(len(p.labels))) | {MISSING_LABEL}
        assert len(values - {MISSING_LABEL}) >= 2, name
    assert any(v == MISSING_LABEL for name in names for v in train[name])
    assert all(text for text in train["text"])  # synthetic: every labelled level has its snippet


def test_splits_are_by_report_reproducible_and_stratified() -> None:
    splits = load_region("cervical", _ctx(seed=1))
    owners = {split: set(ds["report_id"]) for split, ds in splits.items()}
    assert (
        not owners["train"] & owners["dev"]
        and not owners["train"] & owners["test"]
        and not owners["dev"] & owners["test"]
    )
    assert sum(len(o) for o in owners.values()) == 60
    again = load_region("cervical", LoadContext(seed=1, profile="smoke", options=dict(SMALL)))
    assert {s: list(d["report_id"]) for s, d in again.items()} == {s: list(d["report_id"]) for s, d in splits.items()}
    other = load_region("cervical", _ctx(seed=2))
    assert set(other["train"]["report_id"]) != owners["train"]
    reports = [s.report for s in generate(GeneratorConfig(reports=200, seed=0)).of_region("lumbar")]
    counts = Counter(assign_splits(reports, "lumbar", seed=0).values())
    assert counts == {"train": 140, "dev": 30, "test": 30}


def test_region_tasks_share_one_cached_build() -> None:
    ctx = _ctx(seed=3)
    assert load_split("cervical", "train", ctx) is load_split("cervical", "train", _ctx(seed=3))
    assert load_split("cervical", "dev", ctx)._fingerprint == load_region("cervical", ctx)["dev"]._fingerprint
    assert load_split("cervical", "dev", ctx)._fingerprint != load_split("lumbar", "dev", ctx)._fingerprint


def test_user_data_gives_the_same_datasets_as_the_synthetic_corpus(tmp_path: Path) -> None:
    config = GeneratorConfig(reports=60, seed=4, **{k: v for k, v in CORPUS_PRESETS["smoke"].items() if k != "reports"})
    write_reports(tmp_path / "reports.jsonl", (s.report for s in generate(config).reports))
    synthetic = load_region("lumbar", _ctx(seed=4))
    user = load_region("lumbar", LoadContext(data_dir=tmp_path, seed=4))
    for split in ("train", "dev", "test"):
        assert synthetic[split].to_dict() == user[split].to_dict()


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_given_splits_and_labelled_levels_without_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Patient Jane Roe"
    records = [
        {"report_id": f"r{i}", "region": "cervical", "split": split,
         "text": f"FINDINGS:\nC5-6: Mild disc bulge. {secret}\n",
         "labels": {"C5-C6": {"disc": "bulge"}, "C2-C3": {"disc": "none"}}}
        for i, split in enumerate(["train", "train", "dev", "test"])
    ]  # fmt: skip
    path = _write(tmp_path / "mine.jsonl", records)
    with caplog.at_level(logging.WARNING):
        splits = load_region("cervical", LoadContext(data_dir=path))
    assert splits["train"]["report_id"] == ["r0", "r0", "r1", "r1"]
    assert splits["train"]["level"] == ["C2-C3", "C5-C6"] * 2
    assert splits["train"]["text"][0] == "" and splits["train"]["text"][1].startswith("C5-6: Mild disc bulge.")
    assert splits["dev"]["disc"] == [0, 1] and splits["dev"]["canal_stenosis"] == [MISSING_LABEL] * 2
    assert "4 labelled levels have no findings text" in caplog.text and "r0" in caplog.text
    assert secret not in caplog.text and "bulge" not in caplog.text
    with pytest.raises(DataError, match="no lumbar reports"):
        load_region("lumbar", LoadContext(data_dir=path))
    only_train = _write(tmp_path / "train.jsonl", [dict(records[0])])
    with pytest.raises(DataError, match="split 'dev'"):
        load_split("cervical", "dev", LoadContext(data_dir=only_train))


def test_a_report_without_any_level_is_warned_about_apart_from_unmentioned_levels(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Patient Jane Roe"
    lost = f"HISTORY: Neck pain. {secret}\nFINDINGS: Degenerative changes, worst in the lower spine. {secret}\n"
    records = [
        {"report_id": "lost", "region": "cervical", "split": "train", "text": lost,
         "labels": {"C5-C6": {"disc": "bulge"}, "C6-C7": {"disc": "none"}}},
        {"report_id": "partial", "region": "cervical", "split": "train", "text": "FINDINGS:\nC5-6: Mild disc bulge.\n",
         "labels": {"C5-C6": {"disc": "bulge"}, "C2-C3": {"disc": "none"}}},
        {"report_id": "fine", "region": "cervical", "split": "dev", "text": "C5-6: Bulge.", "labels": {"C5-C6": {}}},
        {"report_id": "fine2", "region": "cervical", "split": "test", "text": "C5-6: Bulge.", "labels": {"C5-C6": {}}},
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        load_region("cervical", LoadContext(data_dir=_write(tmp_path / "r.jsonl", records)))
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2, messages
    assert "report lost: no vertebral level found" in messages[0] and "partial" not in messages[0]
    assert "1 labelled levels have no findings text" in messages[1] and "in reports partial" in messages[1]
    assert "lost" not in messages[1]
    assert secret not in caplog.text and "Degenerative" not in caplog.text


UNLISTED_TEXT = "FINDINGS:\nL2-3: Normal.\nL3-4: Mild bulge.\nL4-5: Moderate canal stenosis.\nL5-S1: Normal.\n"
# L1-L2 is not mentioned


def _unlisted_records(**extra) -> list[dict]:
    return [
        {"report_id": f"r{i}", "region": "lumbar", "split": split, "text": UNLISTED_TEXT,
         "labels": {"L3-L4": {"disc": "bulge"}, "L4-L5": {"canal_stenosis": "moderate"}}, **extra}
        for i, split in enumerate(["train", "dev", "test"])
    ]  # fmt: skip


def test_unlisted_levels_are_unannotated_by_default(tmp_path: Path) -> None:
    train = load_region("lumbar", LoadContext(data_dir=_write(tmp_path / "r.jsonl", _unlisted_records())))["train"]
    assert train["level"] == ["L3-L4", "L4-L5"]


def test_unlisted_normal_labels_every_unlisted_level_with_text_normal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _write(tmp_path / "r.jsonl", _unlisted_records())
    with caplog.at_level(logging.INFO):
        train = load_region("lumbar", LoadContext(data_dir=path, options={"unlisted": "normal"}))["train"]
    assert train["level"] == ["L2-L3", "L3-L4", "L4-L5", "L5-S1"]  # L1-L2 has no text: no row
    assert train["text"][0] == "L2-3: Normal." and all(train["text"])
    names = [p.name for p in region_pathologies("lumbar")]
    for name in names:  # unlisted levels: every pathology normal; listed ones as given
        assert train[name][0] == train[name][3] == 0
    assert train["disc"][1] == 1 and train["canal_stenosis"][1] == MISSING_LABEL
    assert "3 unlisted levels (taken as normal) have no findings text" in caplog.text and "r0" in caplog.text
    assert "Moderate" not in caplog.text


def test_the_unlisted_field_overrides_the_option_per_report(tmp_path: Path) -> None:
    records = _unlisted_records(unlisted="normal")
    records[0]["unlisted"] = "unannotated"
    splits = load_region("lumbar", LoadContext(data_dir=_write(tmp_path / "r.jsonl", records)))
    assert splits["train"]["level"] == ["L3-L4", "L4-L5"]
    assert splits["dev"]["level"] == ["L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    again = load_region("lumbar", LoadContext(data_dir=tmp_path / "r.jsonl", options={"spine.unlisted": "normal"}))
    assert again["train"]["level"] == ["L3-L4", "L4-L5"]


def test_unlisted_normal_is_consistent_with_the_remaining_levels_sentence(tmp_path: Path) -> None:
    text = "FINDINGS:\nL4-5: Moderate canal stenosis.\nThe remaining levels are unremarkable.\n"
    records = [{**r, "text": text, "labels": {"L4-L5": {"canal_stenosis": "moderate"}}} for r in _unlisted_records()]
    train = load_region("lumbar", LoadContext(data_dir=_write(tmp_path / "r.jsonl", records),
                                              options={"unlisted": "normal"}))["train"]  # fmt: skip
    assert train["level"] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert train["text"][0] == "The remaining levels are unremarkable." and train["canal_stenosis"] == [0, 0, 0, 2, 0]


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (LoadContext(profile="huge"), "no size for profile 'huge'"),
        (LoadContext(options={"reports": "many"}), "expected int"),
        (LoadContext(options={"noise": "2"}), "noise must be between 0 and 1"),
        (
            LoadContext(options={"spine.rports": "5"}),
            "unknown spine data option 'spine.rports'; did you mean 'reports'",
        ),
        (LoadContext(options={"report": "5"}), "did you mean 'reports'"),
        (LoadContext(data_dir=Path("."), options={"noise": "0.1"}), "only applies to the synthetic"),
        (LoadContext(options={"unlisted": "normal"}), "unlisted only applies to --data"),
        (
            LoadContext(data_dir=Path("."), options={"unlisted": "norml"}),
            "data option unlisted='norml': expected one of unannotated, normal; did you mean 'normal'",
        ),
        (LoadContext(data_dir=Path("."), options={"spine.unlisteed": "normal"}), "did you mean 'unlisted'"),
    ],
)
def test_bad_options_are_config_errors(ctx: LoadContext, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_region("cervical", ctx)


def test_options_resize_the_corpus_and_foreign_options_are_ignored() -> None:
    small = load_region("cervical", LoadContext(profile="smoke", options={"spine.reports": "20", "source": "hub"}))
    assert sum(len(set(d["report_id"])) for d in small.values()) == 20
    noisy = load_region(
        "cervical", LoadContext(profile="smoke", options={"reports": "20", "noise": "0.5", "seed": "0"})
    )
    rows = lambda splits: sorted(  # noqa: E731
        (r["report_id"], r["level"], r["text"], r["canal_stenosis"]) for d in splits.values() for r in d
    )
    same_text = [(a[:3] == b[:3]) for a, b in zip(rows(noisy), rows(small), strict=True)]
    assert all(same_text)  # noise changes labels, never text
    assert [a[3] for a in rows(noisy)] != [b[3] for b in rows(small)]
