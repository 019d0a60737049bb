"""``harness spine evaluate``: the transfer figures by hand, on the real transfer set, and end to end."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from harness_spine.reports import Report
from harness_spine.transfer import GoldLabel, gold_labels, score
from harness_spine.userdata import read_reports, write_reports

from harness.errors import DataError

TRANSFER = Path(__file__).resolve().parent / "fixtures" / "transfer" / "reports.jsonl"

# --- the scoring, by hand ------------------------------------------------------------------------

HAND = Report(
    report_id="h1",
    region="cervical",
    text="FINDINGS:\nC4-C5: Normal.\nC5-C6: Moderate canal stenosis. Cord signal abnormality.\n",
    labels={
        "C4-C5": {"canal_stenosis": "normal", "cord_signal": "absent"},
        "C5-C6": {"canal_stenosis": "moderate", "cord_signal": "present"},
        "C6-C7": {"canal_stenosis": "mild", "cord_signal": "absent"},  # no text for C6-C7 in the findings
    },
)
LUMBAR = Report(
    report_id="h2", region="lumbar", text="FINDINGS:\nL4-L5: Disc bulge.\n", labels={"L4-L5": {"disc": "bulge"}}
)
# per gold label, in order (C4-C5, C5-C6, C6-C7; canal then cord; then lumbar.disc, which no model predicts)
PREDICTED = ["normal", "absent", "mild", "present", "mild", "present", None]


def _frac(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1000)


def test_gold_labels_follow_the_annotation_in_level_and_column_order():
    gold = gold_labels([HAND, LUMBAR])
    assert [(g.level, g.pathology, g.label) for g in gold] == [
        ("C4-C5", "canal_stenosis", "normal"),
        ("C4-C5", "cord_signal", "absent"),
        ("C5-C6", "canal_stenosis", "moderate"),
        ("C5-C6", "cord_signal", "present"),
        ("C6-C7", "canal_stenosis", "mild"),
        ("C6-C7", "cord_signal", "absent"),
        ("L4-L5", "disc", "bulge"),
    ]
    assert [g.has_text for g in gold] == [True, True, True, True, False, False, True]
    assert [g.abnormal for g in gold] == [False, False, True, True, True, False, True]
    assert gold[0].task == "cervical.canal_stenosis" and gold[-1].normal == "none"


def test_a_three_level_example_computed_by_hand():
    scores = score(gold_labels([HAND, LUMBAR]), PREDICTED)
    canal, cord = scores.pathologies
    assert (canal.scope, cord.scope) == ("canal_stenosis", "cord_signal")
    # canal: normal/normal, moderate/mild, mild/mild -> 2 of 3; abnormal (moderate, mild) 1 of 2.
    # F1 over {normal, mild, moderate}: normal 1; mild P 1/2, R 1 -> 2/3; moderate 0 -> (1 + 2/3 + 0) / 3 = 5/9
    assert (canal.model.labels, canal.model.correct, canal.model.abnormal, canal.model.abnormal_correct) == (3, 2, 2, 1)
    assert _frac(canal.model.f1_macro) == Fraction(5, 9)
    # cord: absent/absent, present/present, absent/present -> 2 of 3; abnormal 1 of 1.
    # F1: absent P 1, R 1/2 -> 2/3; present P 1/2, R 1 -> 2/3 -> 2/3
    assert (cord.model.correct, cord.model.abnormal, cord.model.abnormal_correct) == (2, 1, 1)
    assert _frac(cord.model.f1_macro) == Fraction(2, 3)
    overall = scores.overall.model
    assert (overall.labels, overall.correct, overall.abnormal, overall.abnormal_correct) == (6, 4, 3, 2)
    assert overall.accuracy == pytest.approx(4 / 6) and overall.abnormal_accuracy == pytest.approx(2 / 3)
    assert _frac(overall.f1_macro) == Fraction(11, 18)  # the mean of 5/9 and 2/3
    # always normal: canal 1 of 3 (F1: normal P 1/3, R 1 -> 1/2; mild, moderate 0 -> 1/6);
    # cord 2 of 3 (absent P 2/3, R 1 -> 4/5; present 0 -> 2/5); abnormal never right
    base = scores.overall.baseline
    assert (base.correct, base.abnormal, base.abnormal_correct) == (3, 3, 0)
    assert _frac(canal.baseline.f1_macro) == Fraction(1, 6) and _frac(cord.baseline.f1_macro) == Fraction(2, 5)
    assert _frac(base.f1_macro) == Fraction(17, 60) and base.abnormal_accuracy == 0
    # per task = per pathology here (one region each); lumbar.disc has no model: not scored, counted
    assert [t.scope for t in scores.tasks] == ["cervical.canal_stenosis", "cervical.cord_signal"]
    assert scores.tasks[0].model == canal.model
    assert (scores.unscored, scores.unscored_tasks) == (1, ("lumbar.disc",))
    assert (scores.reports, scores.levels, scores.levels_without_text, scores.labels_without_text) == (1, 3, 1, 2)


def test_the_json_form_holds_figures_only():
    data = score(gold_labels([HAND, LUMBAR]), PREDICTED).to_dict()
    assert data["version"] == 1 and data["counts"]["labels"] == 6 and data["counts"]["unscored"] == 1
    assert data["overall"]["model"]["accuracy"] == pytest.approx(4 / 6)
    assert data["overall"]["always_normal"]["abnormal_accuracy"] == 0
    assert set(data["pathologies"]) == {"canal_stenosis", "cord_signal"}
    text = json.dumps(data)
    assert not any(word in text for word in ("moderate", "present", "h1", "C5-C6", "Cord signal"))


def test_a_scope_without_abnormal_labels_has_no_abnormal_accuracy_and_nothing_scored_is_an_error():
    only_normal = [GoldLabel("r", "cervical", "C2-C3", "cord_signal", "absent", ("absent", "present"), True)]
    result = score(only_normal, ["present"]).overall.model
    assert (result.accuracy, result.abnormal, result.abnormal_accuracy, result.f1_macro) == (0, 0, None, 0)
    with pytest.raises(DataError, match="nothing to score"):
        score(only_normal, [None])
    with pytest.raises(ValueError, match="1 gold labels"):
        score(only_normal, [])


def test_unlisted_normal_levels_are_gold_where_the_report_has_text(tmp_path):
    report = Report(
        report_id="u1", region="cervical", unlisted="normal",
        text="FINDINGS:\nC3-C4: Unremarkable.\nC5-C6: Mild disc bulge.\n",
        labels={"C5-C6": {"disc": "bulge"}},
    )  # fmt: skip
    gold = gold_labels([report])
    assert {(g.level, g.pathology): g.label for g in gold if g.level == "C3-C4"} == {
        ("C3-C4", p): label
        for p, label in {
            "canal_stenosis": "normal", "left_foraminal": "normal", "right_foraminal": "normal", "disc": "none",
            "facet_arthropathy": "normal", "cord_signal": "absent", "annular_fissure": "absent", "hemangioma": "absent",
        }.items()
    }  # fmt: skip
    assert [(g.level, g.pathology) for g in gold if g.level == "C5-C6"] == [("C5-C6", "disc")]  # only what is given
    assert {g.level for g in gold} == {"C3-C4", "C5-C6"}  # levels never written about are not gold


def test_the_transfer_set_s_baseline_counted_from_the_file():
    records = [json.loads(line) for line in TRANSFER.read_text(encoding="utf-8").splitlines() if line.strip()]
    from harness_spine.schema import pathology

    labels = [
        (r["region"], p, label) for r in records for per_level in r["labels"].values() for p, label in per_level.items()
    ]
    normal = sum(label == pathology(p).labels[0] for _, p, label in labels)
    assert (len(records), len(labels), len(labels) - normal) == (23, 726, 190)  # what its README says
    assert all(r["split"] == "test" for r in records)
    gold = gold_labels(read_reports(TRANSFER))
    scores = score(gold, [g.normal for g in gold])  # always normal, as the model's side too
    base = scores.overall.baseline
    assert (base.labels, base.correct, base.abnormal, base.abnormal_correct) == (len(labels), normal, 190, 0)
    assert base.accuracy == pytest.approx(536 / 726)
    assert scores.overall.model == base
    for row in scores.pathologies:
        mine = [(region, label) for region, p, label in labels if p == row.scope]
        assert row.baseline.labels == len(mine)
        assert row.baseline.correct == sum(label == pathology(row.scope).labels[0] for _, label in mine)
    assert sum(row.baseline.labels for row in scores.tasks) == 726
    assert scores.levels == 121 and scores.levels_without_text == 0  # the segmenter finds every labelled level


# --- end to end with the tiny model ------------------------------------------------------------

TASKS = ("cervical.canal_stenosis", "cervical.disc", "lumbar.subarticular_stenosis")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Iterator[Path]:
    """A private tokenization cache and no job store, as the core tests' conftest sets them."""
    saved = {k: os.environ.get(k) for k in ("HARNESS_CACHE", "HARNESS_JOB_STORE")}
    os.environ["HARNESS_CACHE"] = str(tmp_path_factory.mktemp("harness-cache"))
    os.environ["HARNESS_JOB_STORE"] = "none"
    yield Path(os.environ["HARNESS_CACHE"])
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache) -> Path:
    from harness.cli import main

    out = tmp_path_factory.mktemp("transfer") / "run"
    argv = ["run", "--plugin", "spine", "--tasks", ",".join(TASKS), "--profile", "smoke", "--stages", "stl,all"]
    # every dev row (no slice), so that the recorded dev metrics are over the whole dev split
    assert main([*argv, "--set", "epochs=2", "--set", "max_eval_examples=0", "--output", str(out)]) == 0
    return out


def _cli(capsys, *argv: object) -> tuple[int, str, str]:
    from harness.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _evaluate(capsys, run: Path, data: Path, *argv: object) -> tuple[dict, str]:
    code, out, err = _cli(capsys, "spine", "evaluate", run, "--data", data, "--json", "-", *argv)
    assert code == 0, err
    return json.loads(out), err


def _dev_reports(path: Path) -> None:
    """The smoke corpus's dev reports (both regions), annotated, in the user-data format."""
    from harness_spine.corpus import corpus_source, region_reports
    from harness_spine.splits import assign_splits

    from harness.api import LoadContext

    ctx = LoadContext(profile="smoke")
    dev = []
    for region in ("cervical", "lumbar"):
        reports = region_reports(region, corpus_source(ctx))
        splits = assign_splits(reports, region, ctx.seed)
        dev += [r for r in reports if splits[r.report_id] == "dev"]
    write_reports(path, dev)


@pytest.mark.slow
@pytest.mark.parametrize("job", ["all", "stl"])
def test_on_the_dev_reports_each_task_s_figures_are_the_recorded_dev_metrics(run, tmp_path, capsys, job):
    _dev_reports(tmp_path / "dev.jsonl")
    figures, err = _evaluate(capsys, run, tmp_path / "dev.jsonl", "--job", job)
    assert set(figures["tasks"]) == set(TASKS) and figures["counts"]["unscored_tasks"] != []
    for key in figures["jobs"]:
        recorded = json.loads((run / "jobs" / key / "result.json").read_text())["dev"]
        for task, metrics in recorded.items():
            model = figures["tasks"][task]["model"]
            assert model["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12), (key, task)
            assert model["f1_macro"] == pytest.approx(metrics["f1_macro"], abs=1e-12), (key, task)
    assert len(figures["jobs"]) == (1 if job == "all" else 3)
    assert f"scoring job {figures['jobs'][0]}" in err


def _predict_rows(capsys, run: Path, data: Path, job: str) -> dict[tuple[str, str, str], str]:
    code, out, err = _cli(capsys, "predict", run, "--input", data, "--job", job)
    assert code == 0, err
    return {(r["id"], r["level"], r["task"]): r["label"] for r in map(json.loads, out.splitlines())}


@pytest.mark.slow
def test_on_the_transfer_set_the_figures_are_harness_predict_s_labels_scored(run, tmp_path, capsys):
    from harness_spine.levels import normalize_level
    from sklearn.metrics import f1_score

    out = tmp_path / "figures.json"
    code, stdout, err = _cli(capsys, "spine", "evaluate", run, "--data", TRANSFER, "--json", out)
    assert code == 0, err
    assert stdout == "" and f"wrote the figures to {out}" in err
    figures = json.loads(out.read_text())
    predicted = _predict_rows(capsys, run, TRANSFER, "all")
    records = [json.loads(line) for line in TRANSFER.read_text(encoding="utf-8").splitlines() if line.strip()]
    first = {"canal_stenosis": "normal", "disc": "none", "subarticular_stenosis": "normal"}
    for task in TASKS:
        region, name = task.split(".")
        pairs = [
            (levels[name], predicted[(r["report_id"], normalize_level(level), task)])  # each labelled level has one
            for r in records
            if r["region"] == region
            for level, levels in r["labels"].items()
            if name in levels
        ]
        model = figures["tasks"][task]["model"]
        abnormal = [(g, p) for g, p in pairs if g != first[name]]
        assert model["labels"] == len(pairs) and model["correct"] == sum(g == p for g, p in pairs)
        assert (model["abnormal"], model["abnormal_correct"]) == (len(abnormal), sum(g == p for g, p in abnormal))
        golds, preds = zip(*pairs, strict=True)
        assert model["f1_macro"] == pytest.approx(f1_score(golds, preds, average="macro", zero_division=0))
        base = figures["tasks"][task]["always_normal"]
        assert base["correct"] == len(pairs) - len(abnormal) and base["abnormal_correct"] == 0
    assert figures["counts"]["labels"] == sum(figures["tasks"][t]["model"]["labels"] for t in TASKS)
    assert figures["counts"]["unscored"] == 726 - figures["counts"]["labels"]
    # the table is on stderr; no report text nor label is echoed
    assert "all labels" in err and "canal_stenosis" in err and "not scored:" in err
    texts = [line for r in records for line in r["text"].splitlines() if len(line) > 25]
    assert not any(t in err or t in out.read_text() for t in texts)
    assert not any(word in err + out.read_text() for word in ("moderate", "protrusion", "tc01"))
    # an existing --json is refused without --force, and left as it was
    before = out.read_bytes()
    code, _, err = _cli(capsys, "spine", "evaluate", run, "--data", TRANSFER, "--json", out)
    assert code == 2 and "exists" in err and "--force" in err and out.read_bytes() == before
    code, _, err = _cli(capsys, "spine", "evaluate", run, "--data", TRANSFER, "--json", out, "--force")
    assert code == 0, err


@pytest.mark.slow
def test_a_labelled_level_without_text_is_predicted_from_an_empty_snippet(run, tmp_path, capsys):
    from harness_spine import transfer

    from harness.core.plugins import build_registries, new_manager
    from harness.inference.engine import decide, head_logits, input_groups
    from harness.inference.jobs import read_run, select_jobs
    from harness.training.saved import load_saved, read_info

    write_reports(tmp_path / "r.jsonl", [HAND])
    figures, err = _evaluate(capsys, run, tmp_path / "r.jsonl")
    assert (figures["counts"]["levels_without_text"], figures["counts"]["labels_without_text"]) == (1, 1)
    said = "1 labelled level(s) named nowhere in the findings or impression (1 labels): predicted from an empty snippet"
    assert said in err
    # the label of C6-C7 is the model's answer to an empty snippet
    ((job, _),) = select_jobs(read_run(run), ["all"])
    readers = build_registries(new_manager(load=["spine"], autoload=False)).readers
    gold = [g for g in gold_labels([HAND]) if g.pathology == "canal_stenosis"]
    labels = transfer.predict_gold({job.key: job.model}, [HAND], gold, readers)
    heads = [h for g in input_groups(read_info(job.model), readers) for h in g.heads]
    head = next(h for h in heads if h.task == "cervical.canal_stenosis")
    logits = head_logits(load_saved(job.model), [("",)], [head.task])
    assert labels[2] == decide(head, logits[head.task][0])[0]
    assert labels[:2] == [
        p for (rid, level, task), p in sorted(_predict_rows(capsys, run, tmp_path / "r.jsonl", "all").items())
        if task == head.task
    ]  # fmt: skip


@pytest.mark.slow
def test_bad_inputs_are_one_line_and_exit_2(run, tmp_path, capsys):
    def fails(*argv: object) -> str:
        code, out, err = _cli(capsys, "spine", "evaluate", *argv)
        assert code == 2 and out == "", err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
        return err

    assert "no such file or folder" in fails(run, "--data", tmp_path / "missing.jsonl")
    secret = "Zqx secret finding at C5-C6"
    (tmp_path / "predict.jsonl").write_text(json.dumps({"report_id": "a", "text": secret}) + "\n")
    err = fails(run, "--data", tmp_path / "predict.jsonl")  # a predict input, not the user-data format
    assert "predict.jsonl:1" in err and "region" in err and secret not in err
    (tmp_path / "plain.txt").write_text(secret + "\n")
    assert "invalid JSON" in fails(run, "--data", tmp_path / "plain.txt")
    write_reports(tmp_path / "unlabelled.jsonl", [Report("u", "cervical", "FINDINGS:\nC5-C6: Bulge.\n", {})])
    assert "labels a level" in fails(run, "--data", tmp_path / "unlabelled.jsonl")
    write_reports(tmp_path / "lumbar.jsonl", [LUMBAR])
    err = fails(run, "--data", tmp_path / "lumbar.jsonl", "--job", "stl-0-cervical.disc")
    assert "predicts none of the labelled tasks (lumbar.disc)" in err
    assert "not a harness run directory" in fails(tmp_path, "--data", TRANSFER)
    assert "unknown job" in fails(run, "--data", TRANSFER, "--job", "stl-9-nothing")
    assert "--seed 1" in fails(run, "--data", TRANSFER, "--job", "stl-0-cervical.disc", "--seed", "1")
    assert "does not exist; create it first" in fails(run, "--data", TRANSFER, "--json", tmp_path / "no" / "f.json")
    assert "is a folder" in fails(run, "--data", TRANSFER, "--json", tmp_path)
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "locked").mkdir(mode=0o500)
        assert "cannot write into" in fails(run, "--data", TRANSFER, "--json", tmp_path / "locked" / "f.json")
    # a run whose all-task job has no saved model
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ((mtl,),) = [[p for p in (copy / "jobs").iterdir() if p.name.startswith("mtl-")]]
    info = json.loads((mtl / "best" / "harness.json").read_text())  # a head of another task version
    head = next(h for h in info["heads"] if h["task"] == "cervical.canal_stenosis")
    head["labels"] = head["labels"][::-1]
    (mtl / "best" / "harness.json").write_text(json.dumps(info))
    assert "train it again with this version of the plugin" in fails(copy, "--data", TRANSFER)
    shutil.rmtree(mtl / "best")
    assert f"job {mtl.name} has no saved model" in fails(copy, "--data", TRANSFER)
