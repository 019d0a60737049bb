"""``harness predict``: saved models reproduce the run's own evaluation; formats; errors; the job store."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.api import LoadContext
from harness.cli import main

pytestmark = pytest.mark.slow
TOY = ["--tasks", "toy.colour,toy.size,toy.score", "--profile", "smoke", "--stages", "stl,all"]
TOY_SET = ["--set", "epochs=2", "--set", "max_eval_examples=0"]  # dev = every dev row (no slice)
SPINE_TASKS = ("cervical.disc", "cervical.canal_stenosis", "lumbar.disc")


def _train(argv: list[str], toy: bool = True) -> None:
    if toy:
        os.environ["HARNESS_PLUGIN_MODULES"] = "toy"
    try:
        assert main(["run", *argv]) == 0
    finally:
        os.environ.pop("HARNESS_PLUGIN_MODULES", None)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, store) -> Path:
    out = tmp_path_factory.mktemp("toy") / "run"
    _train([*TOY, *TOY_SET, "--output", str(out), "--job-store", str(store)])
    return out


@pytest.fixture(scope="module")
def spine_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("spine") / "run"
    argv = ["--plugin", "spine", "--tasks", ",".join(SPINE_TASKS), "--profile", "smoke", "--stages", "stl,all"]
    _train([*argv, *TOY_SET, "--output", str(out), "--job-store", "none"], toy=False)
    return out


def _job(run: Path, prefix: str) -> Path:
    (found,) = [p for p in (run / "jobs").iterdir() if p.name.startswith(prefix)]
    return found


def _registries():
    import toy

    from harness.core.plugins import build_registries, new_manager

    return build_registries(new_manager(load=["spine"], autoload=False, extra=[("toy", toy)]))


def _predict(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _toy_dev_input(path: Path) -> list[dict]:
    import toy

    rows = toy._rows("dev", 0)
    records = [{"id": f"d{i}", "text": text} for i, text in enumerate(rows["text"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def _recorded_dev(job: Path) -> dict:
    return json.loads((job / "result.json").read_text())["dev"]


def _scores(registries, task: str, predicted: list, refs: list) -> dict:
    from harness.training.runner import score

    spec = registries.tasks.get(task)
    if spec.problem_type.value == "regression":
        preds = np.asarray(predicted, dtype=np.float32)
    else:
        preds = np.asarray([spec.labels.index(p) for p in predicted])
    return score(spec, preds, np.asarray(refs), registries.metrics)


# --- the saved model -----------------------------------------------------------------------------


def test_the_saved_folder_loads_with_transformers_auto_classes(toy_run):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from harness.training.model import load_tokenizer

    best = _job(toy_run, "mtl-0-") / "best"
    encoder, tokenizer = AutoModel.from_pretrained(best), AutoTokenizer.from_pretrained(best)
    saved = load_file(str(best / "model.safetensors"))
    state = encoder.state_dict()
    assert all(np.array_equal(state[k].numpy(), v.numpy()) for k, v in saved.items())
    text = ["a small red box hat", "A LARGE blue cup, shoe!"]
    ids = tokenizer(text, truncation=True, max_length=64)["input_ids"]
    assert ids == load_tokenizer("tiny")(text, truncation=True, max_length=64)["input_ids"]
    info = json.loads((best / "harness.json").read_text())
    heads = {h["task"]: h for h in info["heads"]}
    assert heads["toy.colour"]["labels"] == ["red", "green", "blue"]
    assert heads["toy.score"]["problem_type"] == "regression" and heads["toy.score"]["labels"] == []
    assert {h["input_reader"] for h in info["heads"]} == {"rows"} and info["max_length"] == 64
    assert info["pooling"] == "mean" and info["encoder"] == "tiny" and info["kind"] == "mtl"
    heads_state = load_file(str(best / "heads.safetensors"))
    assert heads_state["toy__colour.weight"].shape == (3, 128) and "toy__score.bias" in heads_state
    assert not any(k.startswith(("heads.", "encoder.embeddings.")) for k in saved)  # each weight stored once


def test_weights_reload_into_a_model_and_a_killed_swap_is_recovered(tmp_path):
    import torch
    from accelerate import Accelerator

    from harness.api import ProblemType
    from harness.training.model import HeadSpec, build_model
    from harness.training.saved import ModelInfo, load_weights, save_best

    heads = [HeadSpec("a", ProblemType.SINGLE_LABEL, 3), HeadSpec("b", ProblemType.REGRESSION, 1)]
    torch.manual_seed(0)
    model, _ = build_model("tiny", heads, "mean", 0.1)
    info = ModelInfo([], "mean", 64, "tiny", "job", "mtl", 0, 1, 0.5)
    save_best(Accelerator(cpu=True), model, tmp_path / "best", info)
    torch.manual_seed(1)
    other, _ = build_model("tiny", heads, "mean", 0.1)
    (tmp_path / "best").rename(tmp_path / "best.old")  # killed between save_best's two renames
    load_weights(other, tmp_path / "best")
    assert (tmp_path / "best").is_dir() and not (tmp_path / "best.old").exists()
    mine, theirs = model.state_dict(), other.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    # a folder of the format before harness.json (the whole model in one file) still loads for --resume
    from safetensors.torch import save_file

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(legacy / "model.safetensors"))
    torch.manual_seed(2)
    third, _ = build_model("tiny", heads, "mean", 0.1)
    load_weights(third, legacy)
    assert all(torch.equal(mine[k], v) for k, v in third.state_dict().items())


# --- predictions reproduce the run's evaluation -------------------------------------------------


def test_toy_predictions_on_dev_reproduce_the_recorded_dev_metrics(toy_run, tmp_path, capsys):
    import toy

    registries = _registries()
    records = _toy_dev_input(tmp_path / "dev.jsonl")
    refs = toy._rows("dev", 0)
    columns = {"toy.colour": "colour", "toy.size": "size", "toy.score": "score"}
    code, out, err = _predict(capsys, toy_run, "--input", tmp_path / "dev.jsonl", "--job", "all", "--job", "stl")
    assert code == 0, err
    rows = _jsonl(out)
    assert "the all-task MTL model of seed 0" in err
    jobs = {r["job"] for r in rows}
    assert len(jobs) == 4  # the MTL job and three STL jobs
    for job in jobs:
        recorded = _recorded_dev(toy_run / "jobs" / job)
        for task in recorded:
            mine = [r for r in rows if r["job"] == job and r["task"] == task]
            assert [r["id"] for r in mine] == [r["id"] for r in records]  # input order, one per row
            predicted = [r["score"] if task == "toy.score" else r["label"] for r in mine]
            scores = _scores(registries, task, predicted, refs[columns[task]])
            for metric, value in recorded[task].items():
                assert scores[metric] == pytest.approx(value, abs=1e-5 if task == "toy.score" else 1e-12), (job, task)
    probabilities = next(r for r in rows if r["task"] == "toy.colour")["probabilities"]
    assert set(probabilities) == {"red", "green", "blue"} and sum(probabilities.values()) == pytest.approx(1, abs=1e-5)


def _dev_reports(path: Path, with_region: bool = True) -> dict:
    """The smoke corpus's dev reports (both regions) as a predict input; their dev rows per region."""
    from harness_spine.corpus import corpus_source, load_region, region_reports
    from harness_spine.splits import assign_splits

    ctx = LoadContext(profile="smoke")
    lines, rows = [], {}
    for region in ("cervical", "lumbar"):
        reports = region_reports(region, corpus_source(ctx))
        splits = assign_splits(reports, region, ctx.seed)
        for r in reports:
            if splits[r.report_id] == "dev":
                record = {"report_id": r.report_id, "text": r.text, **({"region": region} if with_region else {})}
                lines.append(json.dumps(record))
        rows[region] = load_region(region, ctx)["dev"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows


def test_spine_reports_are_segmented_and_reproduce_the_recorded_dev_metrics(spine_run, tmp_path, capsys):
    registries = _registries()
    rows = _dev_reports(tmp_path / "reports.jsonl")
    code, out, err = _predict(capsys, spine_run, "--input", tmp_path / "reports.jsonl", "--output", tmp_path / "p.csv")
    assert code == 0, err
    assert out == ""  # to --output only
    with open(tmp_path / "p.csv", newline="", encoding="utf-8") as f:
        predicted = list(csv.DictReader(f))
    recorded = _recorded_dev(_job(spine_run, "mtl-0-"))
    for task in SPINE_TASKS:
        region, pathology = task.split(".")
        dev = rows[region]
        mine = {(p["id"], p["level"]): p["label"] for p in predicted if p["task"] == task}
        assert len(mine) == len([p for p in predicted if p["task"] == task])  # one prediction per level
        assert set(mine) == set(zip(dev["report_id"], dev["level"], strict=True))  # every dev level, no other
        labels = [mine[(rid, level)] for rid, level in zip(dev["report_id"], dev["level"], strict=True)]
        assert _scores(registries, task, labels, dev[pathology]) == pytest.approx(recorded[task], abs=1e-12)
    assert {p["task"] for p in predicted if p["id"].startswith("lumbar")} == {"lumbar.disc"}


def test_stl_models_each_predict_their_task(spine_run, tmp_path, capsys):
    _dev_reports(tmp_path / "reports.jsonl")
    code, out, err = _predict(capsys, spine_run, "--input", tmp_path / "reports.jsonl", "--job", "stl")
    assert code == 0, err
    rows = _jsonl(out)
    by_job = {}
    for r in rows:
        by_job.setdefault(r["job"], set()).add(r["task"])
    assert sorted(by_job.values(), key=sorted) == [{t} for t in sorted(SPINE_TASKS)]
    assert "inputs not for this model" in err  # lumbar reports for the cervical STL models, and back


def test_output_holds_no_report_text_unless_echoed(spine_run, tmp_path, capsys):
    rows = _dev_reports(tmp_path / "reports.jsonl", with_region=False)
    snippets = [t for t in rows["cervical"]["text"] if len(t) > 30]
    for fmt in ("jsonl", "csv"):
        code, out, err = _predict(capsys, spine_run, "--input", tmp_path / "reports.jsonl", "--format", fmt)
        assert code == 0, err
        assert not any(s in out or json.dumps(s)[1:-1] in out for s in snippets)
    code, out, _ = _predict(capsys, spine_run, "--input", tmp_path / "reports.jsonl", "--echo-text")
    echoed = {(r["id"], r["level"]): r["text"] for r in _jsonl(out) if r["task"] == "cervical.disc"}
    dev = rows["cervical"]
    assert all(
        echoed[(rid, level)] == text
        for rid, level, text in zip(dev["report_id"], dev["level"], dev["text"], strict=True)
    )  # without "region", each region's reader finds its own levels: the same snippets


def test_csv_and_jsonl_hold_the_same_predictions(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "dev.jsonl")
    _, jsonl_out, _ = _predict(capsys, toy_run, "--input", tmp_path / "dev.jsonl")
    _, csv_out, _ = _predict(capsys, toy_run, "--input", tmp_path / "dev.jsonl", "--format", "csv")
    as_csv = list(csv.DictReader(io.StringIO(csv_out)))
    as_jsonl = _jsonl(jsonl_out)
    assert list(as_csv[0]) == ["line", "id", "job", "task", "label", "score", "probabilities"]
    assert len(as_csv) == len(as_jsonl) == 3 * 64
    for c, j in zip(as_csv, as_jsonl, strict=True):
        assert (int(c["line"]), c["id"], c["job"], c["task"]) == (j["line"], j["id"], j["job"], j["task"])
        assert c["label"] == (j["label"] or "") and float(c["score"]) == pytest.approx(j["score"])
        assert (json.loads(c["probabilities"]) if c["probabilities"] else None) == j["probabilities"]


def test_tsv_input_gives_the_jsonl_predictions(toy_run, tmp_path, capsys):
    records = _toy_dev_input(tmp_path / "dev.jsonl")
    tsv = "id\ttext\n" + "".join(f"{r['id']}\t{r['text']}\n" for r in records)
    (tmp_path / "dev.tsv").write_text(tsv, encoding="utf-8")
    _, from_jsonl, _ = _predict(capsys, toy_run, "--input", tmp_path / "dev.jsonl")
    code, from_tsv, err = _predict(capsys, toy_run, "--input", tmp_path / "dev.tsv")
    assert code == 0, err
    strip = [{k: v for k, v in r.items() if k != "line"} for r in _jsonl(from_jsonl)]
    assert strip == [{k: v for k, v in r.items() if k != "line"} for r in _jsonl(from_tsv)]
    assert _jsonl(from_tsv)[0]["line"] == 2  # the header is line 1


def test_the_engine_streams_one_chunk_at_a_time(toy_run):
    """The first predictions come before the input is read beyond the first chunk of records."""
    from harness.inference.engine import CHUNK_RECORDS, input_groups, predict
    from harness.training.saved import load_saved

    loaded = load_saved(_job(toy_run, "mtl-0-") / "best")
    read = []

    def records():
        for i in range(10 * CHUNK_RECORDS):
            read.append(i)
            yield i + 1, {"text": f"a small red box {i}"}

    stream = predict(loaded, input_groups(loaded.info, _registries().readers), records(), where="x")
    next(stream)
    assert len(read) <= CHUNK_RECORDS + 1


def _long_text(rng, chars: int) -> str:
    words = ["a", "small", "red", "box,", "C5-C6:", "café", "naïve", "well-known", "x" * 30, "3.5mm", "(mild)", "東京",
             "🙂", "don't", "\n\n", "\t", "  ", "STENOSIS.", "ü"]  # fmt: skip
    out: list[str] = []
    while sum(map(len, out)) < chars:
        out.append(rng.choice(words) + rng.choice([" ", " ", "\n", "  ", ""]))
    return "".join(out)


def test_a_long_text_is_cut_before_tokenizing_to_exactly_the_kept_tokens():
    import random

    from harness.inference.engine import CHARS_PER_TOKEN, capped
    from harness.training.model import load_tokenizer

    tokenizer, length = load_tokenizer("tiny"), 64
    limit = length * CHARS_PER_TOKEN
    rng = random.Random(0)
    short = "a small red box"
    cases = [(_long_text(rng, 3 * limit),) for _ in range(20)]
    cases += [(_long_text(rng, 3 * limit), short) for _ in range(5)] + [(short, _long_text(rng, 3 * limit))]
    cases += [(_long_text(rng, 3 * limit), "a small red box, " * 12)]  # the other text: 60 tokens, fewer than 64
    for texts in cases:
        cut = capped(tokenizer, texts, length)
        assert max(map(len, cut)) <= limit  # cut: tokenized from a prefix
        mine = tokenizer(*cut, truncation=True, max_length=length)["input_ids"]
        assert mine == tokenizer(*texts, truncation=True, max_length=length)["input_ids"]
    kept = [
        ("x" * (3 * limit),),  # no whitespace to cut at
        ("x" * 200 + " " + "y" * (3 * limit),),  # a prefix of fewer than max_length tokens
        (_long_text(rng, 3 * limit), _long_text(rng, 3 * limit)),  # both long: which is longer decides
        (_long_text(rng, 3 * limit), _long_text(rng, 2000)),  # the other text has max_length tokens or more
        (_long_text(rng, limit - 50),),  # not long
    ]
    for texts in kept:
        assert capped(tokenizer, texts, length) == texts


def test_a_huge_text_predicts_as_its_beginning_without_tokenizing_it_whole(toy_run, monkeypatch):
    from harness.inference import engine
    from harness.training.saved import load_saved

    loaded = load_saved(_job(toy_run, "mtl-0-") / "best")
    seen: list[int] = []

    class Spy:
        def __call__(self, *columns, **kwargs):
            seen.extend(len(t) for column in columns for t in ([column] if isinstance(column, str) else column))
            return loaded.tokenizer(*columns, **kwargs)

    spied = dataclasses.replace(loaded, tokenizer=Spy())
    groups = engine.input_groups(loaded.info, _registries().readers)
    huge = "a large blue cup. " * 120_000  # 2 MB (tokenized whole, it would take about 400 MB)
    begins = "a large blue cup. " * 100  # by hand: far more than max_length (64) tokens

    def predicted(text: str) -> list[tuple]:
        return [
            (p.task, p.label, p.score, p.probabilities)
            for p in engine.predict(spied, groups, [(1, {"text": text})], where="x")
        ]

    assert predicted(huge) == predicted(begins) and len(predicted(begins)) == 3
    assert max(seen) <= loaded.info.max_length * engine.CHARS_PER_TOKEN  # never the whole text
    monkeypatch.setattr(engine, "CHARS_PER_TOKEN", 10**9)  # never cut: the whole text is tokenized
    whole = engine.head_logits(loaded, [(huge[:200_000],)], ["toy.colour"])["toy.colour"]
    monkeypatch.undo()
    assert np.array_equal(whole, engine.head_logits(loaded, [(huge[:200_000],)], ["toy.colour"])["toy.colour"])


# --- errors: one line, non-zero exit, nothing written --------------------------------------------


def _fails(capsys, tmp_path: Path, *argv: str, output: Path | None = None) -> str:
    """The one error line of a failing command, which wrote nothing (``output``: --output, else out.jsonl)."""
    out = output if output is not None else tmp_path / "out.jsonl"
    before = sorted(p.name for p in tmp_path.iterdir())
    code, stdout, err = _predict(capsys, *argv, "--output", out)
    assert code != 0 and stdout == ""
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]), err  # progress lines may come before it
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file
    return errors[0]


def test_errors_for_bad_run_directories_and_jobs(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "in.jsonl")
    inp = tmp_path / "in.jsonl"
    assert "does not exist" in _fails(capsys, tmp_path, tmp_path / "nope", "--input", inp)
    assert "not a harness run directory" in _fails(capsys, tmp_path, tmp_path, "--input", inp)
    err = _fails(capsys, tmp_path, toy_run, "--input", inp, "--job", "stl-0-toy.colr")
    assert "unknown job 'stl-0-toy.colr'" in err and "Did you mean 'stl-0-toy.colour-" in err
    assert "no finished STL job of seed 7" in _fails(
        capsys, tmp_path, toy_run, "--input", inp, "--job", "stl", "--seed", "7"
    )
    legacy = tmp_path / "legacy-run"
    shutil.copytree(toy_run, legacy)
    best = _job(legacy, "mtl-0-") / "best"
    for f in best.iterdir():
        f.chmod(0o644)
    (best / "harness.json").unlink()
    (best / "heads.safetensors").unlink()
    assert "saved by an older harness" in _fails(capsys, tmp_path, legacy, "--input", inp)
    shutil.rmtree(best)
    assert "has no saved model" in _fails(capsys, tmp_path, legacy, "--input", inp)


def test_seed_with_only_job_keys_is_refused(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--job", "mtl-0-", "--seed", "1")
    assert err.startswith("error: --seed 1 chooses the seed of --job all and --job stl only")
    code, out, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--job", "all", "--seed", "0")
    assert code == 0, err
    assert "  mtl-0-" in err and ": 64 inputs, 64 units, 192 predictions" in err and "wrote 192 predictions" in err
    (tmp_path / "one.jsonl").write_text('{"text": "a red box"}\n')
    code, out, err = _predict(capsys, toy_run, "--input", tmp_path / "one.jsonl")
    assert code == 0 and ": 1 input, 1 unit, 3 predictions" in err


def test_an_unknown_job_lists_ten_keys_and_suggests_the_closest(toy_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("jobs"))
    tasks = [f"glue.task{i:02d}" for i in range(40)] + ["glue.rte"]
    for task in tasks:  # a finished STL job each (the selector is refused before any model is read)
        job = run / "jobs" / f"stl-0-{task}-0123456789ab"
        job.mkdir(parents=True)
        (job / "result.json").write_text(json.dumps({"kind": "stl", "tasks": [task], "seed": 0}))
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, run, "--input", tmp_path / "in.jsonl", "--job", "stl-0-gleu.rte")
    keys = ", ".join(f"stl-0-{t}-0123456789ab" for t in sorted(tasks)[:8])
    assert err == (
        f"error: {run}: unknown job 'stl-0-gleu.rte' (known: all, stl, {keys} ... and 33 more "
        f"(ls {run / 'jobs'} lists them)). Did you mean 'stl-0-glue.rte-0123456789ab'?"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jsonl", "", "no inputs (the file holds no record)"),
        ("blank.jsonl", "\n  \n", "no inputs (the file holds no record)"),
        ("garbled.jsonl", '{"text": "a red box"}\n{"text": "a blue\n', "line 2: not valid JSON"),
        ("array.jsonl", '["a red box"]\n', "line 1: a JSON list, not an object"),
        ("number.jsonl", '{"text": 3}\n', "line 1: field 'text': expected text (a string), got int"),
        ("fields.jsonl", '{"txt": "a red box"}\n', "nothing to classify for these models"),
        ("short.tsv", "id\ttext\nx\ta red box\ny\n", "line 3: 1 field, the header has 2"),
        ("latin1.jsonl", b'{"text": "caf\xe9"}\n', "line 1: not UTF-8 text (byte 0xe9)"),
        ("inputs.txt", "a red box\n", "cannot tell its format from the extension '.txt'"),
        (
            "unclosed.csv",
            'id,text\nx,a red box\ny,"a blue cup\nz,a small hat\nw,a large shoe\n',
            "unclosed.csv: line 3: a quoted field opened in the record starting here is never closed",
        ),
        ("stray.csv", 'id,text\nx,"a red" box\n', "stray.csv: line 2: not valid CSV"),
        (
            "surrogate.jsonl",
            '{"id": "r0", "text": "a red box"}\n{"id": "r1", "text": "a red box.\\ud800"}\n',
            "surrogate.jsonl: line 2: field 'text' is not valid Unicode (a lone surrogate escape); fix the input",
        ),
        ("nested.jsonl", '{"text": "a red box", "meta": {"a": ["\\udc00"]}}\n', "line 1: field 'meta' is not valid"),
        ("deep.jsonl", '{"text": "a red box", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply"),
    ],
)
def test_errors_for_bad_inputs(toy_run, tmp_path, capsys, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert message in _fails(capsys, tmp_path, toy_run, "--input", path)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("meta", "--device meta: the meta device holds no data"),
        ("cpu:99", "--device cpu:99: torch has a single CPU device (cpu, or cpu:0)"),
        ("gpu", "--device gpu: not a torch device"),
        ("xpu", "--device xpu: cannot allocate a tensor on it ("),
        ("mps", "--device mps: cannot allocate a tensor on it ("),
    ],
)
def test_a_device_that_cannot_hold_a_tensor_is_refused_before_loading(toy_run, tmp_path, capsys, device, message):
    if device in _devices_here():
        pytest.skip(f"this machine has {device}")
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--device", device)
    assert message in err and err.endswith("this machine has: " + ", ".join(_devices_here()))


def _devices_here() -> list[str]:
    from harness.commands.predict import _devices

    return _devices()


def test_cuda_without_cuda_is_refused(toy_run, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--device", "cuda:0")
    assert err.startswith("error: --device cuda:0: no CUDA device here (or this torch is built without CUDA)")


def test_a_cuda_index_beyond_the_device_count_is_refused(toy_run, tmp_path, capsys, monkeypatch):
    import torch

    if not torch.cuda.is_available():  # pretend one GPU: the index is checked before any allocation
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    count = torch.cuda.device_count()
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--device", f"cuda:{count + 6}")
    assert f"--device cuda:{count + 6}: no such CUDA device (there {'is' if count == 1 else 'are'} {count})" in err
    assert err.endswith(", ".join(f"cuda:{i}" for i in range(count)))


def test_an_input_that_is_not_a_regular_file_is_refused(toy_run, tmp_path, capsys):
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)  # never opened: refused before reading
    err = _fails(capsys, tmp_path, toy_run, "--input", fifo)
    assert err.endswith("not a regular file (stdin and pipes cannot be read again); save it to a file")
    assert _fails(capsys, tmp_path, toy_run, "--input", tmp_path).endswith("a folder; name a file")


def test_a_bad_line_after_good_ones_writes_nothing(toy_run, tmp_path, capsys):
    good = "".join(json.dumps({"text": f"a small red box {i}"}) + "\n" for i in range(600))
    (tmp_path / "late.jsonl").write_text(good + "not json\n", encoding="utf-8")
    assert "line 601: not valid JSON" in _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "late.jsonl")


def test_spine_report_errors_name_the_field_never_the_text(spine_run, tmp_path, capsys):
    secret = "Patient Jane Doe, C5-C6: severe canal stenosis."
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"report_id": "a", "region": "cervicl", "text": secret}) + "\n", encoding="utf-8")
    err = _fails(capsys, tmp_path, spine_run, "--input", path)
    assert "line 1: field 'region': unknown region (7 characters); expected one of: cervical, lumbar" in err
    assert secret not in err and "cervicl" not in err
    path.write_text(json.dumps({"report_id": "a", "region": ["cervical"], "text": secret}) + "\n", encoding="utf-8")
    err = _fails(capsys, tmp_path, spine_run, "--input", path)
    assert "field 'region': unknown region (list, not a string); expected one of: cervical, lumbar" in err
    lost = {"report_id": "MRN-0042", "region": "cervical", "text": "FINDINGS: Normal alignment."}  # no level in it
    path.write_text(json.dumps({"report_id": "a", "text": secret}) + "\n" + json.dumps(lost) + "\n", encoding="utf-8")
    code, _, err = _predict(capsys, spine_run, "--input", path)
    assert code == 0 and "; 1 input with nothing to classify (line 2)" in err and "MRN-0042" not in err
    path.write_text(json.dumps({"report_id": "a", "region": "cervical", "body": secret}) + "\n", encoding="utf-8")
    err = _fails(capsys, tmp_path, spine_run, "--input", path)
    assert "field 'text': expected the whole report as a string (no field 'text')" in err and secret not in err
    lone = '{"report_id":"r1","region":"cervical","text":"FINDINGS: At C5-C6 bulge.\\ud800"}\n'  # a literal escape
    path.write_text(lone, encoding="utf-8")
    err = _fails(capsys, tmp_path, spine_run, "--input", path)
    assert err == f"error: {path}: line 1: field 'text' is not valid Unicode (a lone surrogate escape); fix the input"


def test_an_existing_output_is_kept_unless_forced(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "in.jsonl")
    out = tmp_path / "p.jsonl"
    out.write_text("keep me\n")
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", out)
    assert code == 2 and "exists" in err and out.read_text() == "keep me\n"
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", out, "--force")
    assert code == 0 and len(_jsonl(out.read_text())) == 3 * 64


def test_a_forced_output_through_a_symlink_writes_its_target_and_keeps_the_link(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "in.jsonl")
    (tmp_path / "real").mkdir()
    real, link = tmp_path / "real" / "p.jsonl", tmp_path / "p.jsonl"
    real.write_text("old\n")
    link.symlink_to(real)
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", link, "--force")
    assert code == 0, err
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert len(_jsonl(real.read_text())) == 3 * 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "p.jsonl", "real"]  # no temporary file left
    assert [p.name for p in (tmp_path / "real").iterdir()] == ["p.jsonl"]
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "real" / "new.jsonl")
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", dangling)
    assert code == 2 and "exists" in err and not (tmp_path / "real" / "new.jsonl").exists()
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", dangling, "--force")
    assert code == 0 and dangling.is_symlink() and len(_jsonl((tmp_path / "real" / "new.jsonl").read_text())) == 3 * 64


def test_a_forced_output_keeps_the_replaced_file_s_permissions(toy_run, tmp_path, capsys):
    _toy_dev_input(tmp_path / "in.jsonl")
    out = tmp_path / "p.jsonl"
    out.write_text("old\n")
    out.chmod(0o600)
    code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", out, "--force")
    assert code == 0, err
    assert out.stat().st_mode & 0o777 == 0o600 and len(_jsonl(out.read_text())) == 3 * 64


def test_a_forced_output_into_a_fifo_writes_into_it_and_keeps_it(toy_run, tmp_path, capsys):
    import stat
    import threading

    _toy_dev_input(tmp_path / "in.jsonl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        code, _, err = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl", "--output", fifo, "--force")
    finally:
        if reader.is_alive() and not read:  # the command failed before opening it: unblock the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "pipe"]
    assert len(_jsonl(read[0].decode())) == 3 * 64


def test_a_fifo_that_fails_to_take_the_rows_is_one_error_line(toy_run, tmp_path, capsys, monkeypatch):
    import errno
    import threading

    from harness.inference import output

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    _toy_dev_input(tmp_path / "in.jsonl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = threading.Thread(target=fifo.read_bytes, daemon=True)
    reader.start()
    monkeypatch.setattr(output.shutil, "copyfileobj", full)  # as a full device would
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--force", output=fifo)
    reader.join(30)
    assert err == f"error: --output {fifo}: writing into it failed (No space left on device)"


def test_outputs_that_are_neither_files_nor_devices_are_refused(toy_run, tmp_path, capsys):
    import socket
    import tempfile

    _toy_dev_input(tmp_path / "in.jsonl")
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--force", output=loop)
    assert "a symlink loop; name a file" in err
    short = Path(tempfile.mkdtemp(dir="/tmp"))  # a socket's path must be short
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(short / "s"))
            link = tmp_path / "s.jsonl"
            link.symlink_to(short / "s")
            err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", "--force", output=link)
            assert "is a socket, not a file, character device or FIFO; name a file" in err
    finally:
        shutil.rmtree(short)
    err = _fails(capsys, tmp_path, toy_run, "--input", tmp_path / "in.jsonl", output=tmp_path / "no" / "p.jsonl")
    assert f"the folder {tmp_path / 'no'} does not exist; create it first" in err


# --- the spine input reader and the plugin API ---------------------------------------------------


def test_the_spine_reader_takes_its_region_s_levels():
    from harness_spine.predict import read_report
    from harness_spine.segmenter import segment

    from harness.errors import DataError

    text = "FINDINGS:\nC5-C6: Mild disc bulge.\nC6-C7: Normal.\n\nIMPRESSION: Severe C5-C6 stenosis."
    units = read_report("cervical", {"text": text}, ("text",))
    assert [level for level, _ in units] == ["C5-C6", "C6-C7"]
    # the findings, then the impression's sentences that name the level, as user data are read for training
    assert units[0] == ("C5-C6", ("C5-C6: Mild disc bulge. Severe C5-C6 stenosis.",))
    assert units == [(level, (snippet,)) for level, snippet in segment(text, "cervical", impression=True)]
    assert read_report("lumbar", {"text": text}, ("text",)) == []  # no lumbar level in it
    assert read_report("lumbar", {"text": text, "region": "cervical"}, ("text",)) is None  # not for lumbar models
    with pytest.raises(DataError, match="'text' is null"):
        read_report("cervical", {"text": None}, ("text",))
    with pytest.raises(DataError, match="'text' is an int"):
        read_report("cervical", {"text": 3}, ("text",))


def test_a_task_naming_an_unknown_input_reader_fails_its_plugin():
    from harness.api import TaskSpec, hookimpl
    from harness.core.plugins import build_registries, new_manager

    class Plugin:
        @hookimpl
        def register_tasks(self, register):
            register(TaskSpec("x.t", "regression", ("text",), lambda s, c: None, ("mse",), input_reader="rowz"))

    manager = new_manager(autoload=False, extra=[("bad", Plugin())])
    build_registries(manager, require_wanted=False)
    assert manager.failed["bad"] == "task 'x.t' uses unknown input reader 'rowz' (known: rows). Did you mean 'rows'?"


# --- the job store -------------------------------------------------------------------------------


def test_a_run_reusing_the_store_predicts_with_the_stored_models(toy_run, store, tmp_path, capsys):
    again = tmp_path / "again"
    _train([*TOY, *TOY_SET, "--output", str(again), "--job-store", str(store)])
    results = json.loads((again / "results.json").read_text())
    assert all("reused_from" in entry for entry in results["jobs"].values())
    _toy_dev_input(tmp_path / "in.jsonl")
    _, first, _ = _predict(capsys, toy_run, "--input", tmp_path / "in.jsonl")
    code, second, err = _predict(capsys, again, "--input", tmp_path / "in.jsonl")
    assert code == 0, err
    assert first == second
    job = _job(again, "mtl-0-")
    entry = Path(json.loads((job / "reused.json").read_text())["reused_from"])
    assert json.loads((entry / "entry.json").read_text())["model"] is True
    for name in ("model.safetensors", "heads.safetensors", "harness.json"):  # hard links: the weights once
        assert os.path.samefile(job / "best" / name, entry / "best" / name)
        assert os.path.samefile(entry / "best" / name, _job(toy_run, "mtl-0-") / "best" / name)


def test_stl_says_which_stl_jobs_it_skips_and_why(toy_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    _toy_dev_input(tmp_path / "in.jsonl")
    size, score = _job(run, "stl-0-toy.size-"), _job(run, "stl-0-toy.score-")
    (size / "result.json").unlink()  # killed while training
    (score / "result.json").unlink()
    (score / "error.json").write_text("{}")  # failed
    code, out, err = _predict(capsys, run, "--input", tmp_path / "in.jsonl", "--job", "stl")
    assert code == 0, err
    assert {r["task"] for r in _jsonl(out)} == {"toy.colour"}
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    resume = f"run `harness run ... --output {run} --resume`"
    failed = f"failed: {score / 'error.json'} says why; fix that and {resume}"
    assert warnings == [
        f"warning: --job stl: skipping job {score.name} ({failed})",  # by key
        f"warning: --job stl: skipping job {size.name} (unfinished: no result.json; {resume})",
    ]
    shutil.rmtree(score)  # never started
    code, out, err = _predict(capsys, run, "--input", tmp_path / "in.jsonl", "--job", "stl")
    assert code == 0 and [line for line in err.splitlines() if line.startswith("warning: ")] == [
        warnings[1],
        f"warning: --job stl: no STL model of task toy.score (seed 0): its job has not started; {resume}",
    ]
    code, out, err = _predict(capsys, run, "--input", tmp_path / "in.jsonl")  # the MTL model: no warning
    assert code == 0 and "warning" not in err


def test_a_run_keeping_models_does_not_reuse_a_stored_job_without_one(tmp_path, capsys):
    store = tmp_path / "store"
    first, second = tmp_path / "first", tmp_path / "second"
    _train([*TOY, *TOY_SET, "--output", str(first), "--job-store", str(store), "--set", "keep_best=false"])
    _train([*TOY, *TOY_SET, "--output", str(second), "--job-store", str(store)])  # keep_best is in every key
    assert not list(second.glob("jobs/*/reused.json"))  # nothing reused: the stored entries hold no model
    _toy_dev_input(tmp_path / "in.jsonl")
    err = _fails(capsys, tmp_path, first, "--input", tmp_path / "in.jsonl")
    assert "has no saved model: the run was made with keep_best=false" in err
    code, out, _ = _predict(capsys, second, "--input", tmp_path / "in.jsonl")
    assert code == 0 and _jsonl(out)


def test_a_damaged_saved_model_is_one_line_and_never_unpickled(toy_run, tmp_path, capsys):
    """A cut or replaced weights file (found by a fresh user: a SafetensorError traceback) and an
    unknown pooling in harness.json (it silently pooled by mean) are each one error line."""
    _toy_dev_input(tmp_path / "in.jsonl")
    inp = tmp_path / "in.jsonl"
    damaged = tmp_path / "damaged-run"
    shutil.copytree(toy_run, damaged)
    best = _job(damaged, "mtl-0-") / "best"
    for f in best.iterdir():
        f.chmod(0o644)
    for name in ("model.safetensors", "heads.safetensors"):
        original = (best / name).read_bytes()
        (best / name).write_bytes(original[:20])
        assert "the saved model cannot be loaded (SafetensorError" in _fails(capsys, tmp_path, damaged, "--input", inp)
        (best / name).write_bytes(original)
    info = json.loads((best / "harness.json").read_text())
    (best / "harness.json").write_text(json.dumps({**info, "pooling": "__import__"}))
    assert "pooling must be one of mean, cls" in _fails(capsys, tmp_path, damaged, "--input", inp)
