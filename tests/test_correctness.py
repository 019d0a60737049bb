"""Silent wrong results (issue 8): each task's own labels, 1 process = 2 processes on uneven
splits with missing labels, resume = straight run under gradient accumulation, per-task
reported splits, refusal of tasks without labels, restartable unstarted runs, dev-tuned
multi-label thresholds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.api import MISSING_LABEL, LoadContext
from harness.cli import main
from harness.data.cards import load_cards
from harness.data.streams import make_streams, stream_split
from harness.errors import DataError
from tests.conftest import subprocess_env

COLOURS = ["red", "blue", "green", "black"]


def _write_cards(folder: Path, cards: dict[str, dict], rows: dict[str, list[dict]]) -> None:
    """One jsonl file per task and split, and one card per task (all in input_group 'shared')."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, card in cards.items():
        splits = "\n".join(f'{s} = "{name}-{s}.jsonl"' for s in rows)
        labels = ", ".join(f'"{label}"' for label in card["labels"])
        (folder / f"{name}.toml").write_text(
            textwrap.dedent(
                f"""\
                name = "{name}"
                problem_type = "{card["problem_type"]}"
                labels = [{labels}]
                text_fields = ["text"]
                metrics = {json.dumps(card["metrics"])}
                input_group = "shared"

                [data]
                format = "jsonl"

                [data.splits]
                """
            )
            + splits
            + "\n"
        )
        for split, split_rows in rows.items():
            lines = [json.dumps({"text": r["text"], "label": r[name]}) for r in split_rows]
            (folder / f"{name}-{split}.jsonl").write_text("\n".join(lines) + "\n")


def _opposite_rows(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w = int(rng.integers(2))
        out.append({"text": f"the {COLOURS[w]} item number {i}", "a": ["no", "yes"][w], "b": ["no", "yes"][1 - w]})
    return out


def test_tasks_in_one_group_get_their_own_labels(tmp_path):
    rows = {"train": _opposite_rows(4, 0), "dev": _opposite_rows(4, 1)}
    card = {"problem_type": "single_label_classification", "labels": ["no", "yes"], "metrics": ["accuracy"]}
    _write_cards(tmp_path, {"a": card, "b": card}, rows)
    stream = make_streams(load_cards(tmp_path))[0]
    split = stream_split(stream, "train", LoadContext())
    assert split["label_0"] == [["no", "yes"].index(r["a"]) for r in rows["train"]]
    assert split["label_1"] == [1 - v for v in split["label_0"]]  # b's labels, not a's


def test_group_members_with_other_text_are_an_error_naming_the_row(tmp_path):
    rows = {"train": _opposite_rows(4, 0), "dev": _opposite_rows(4, 1)}
    card = {"problem_type": "single_label_classification", "labels": ["no", "yes"], "metrics": ["accuracy"]}
    _write_cards(tmp_path, {"a": card, "b": card}, rows)
    lines = (tmp_path / "b-train.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"text": "something else", "label": "no"})
    (tmp_path / "b-train.jsonl").write_text("\n".join(lines) + "\n")
    stream = make_streams(load_cards(tmp_path))[0]
    with pytest.raises(DataError, match=r"task 'b' row 2 has other 'text' text than task 'a'") as info:
        stream_split(stream, "train", LoadContext())
    assert "something else" not in str(info.value)  # never the text itself


def _multi_rows(n: int, seed: int, widths: dict[str, int]) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        row: dict = {"text": f"report {i} " + " ".join(f"w{int(k)}" for k in rng.integers(0, 6, 3))}
        for name, width in widths.items():
            row[name] = [f"l{j}" for j in range(width) if rng.random() < 0.15]
        out.append(row)
    return out


def _multi_cards(widths: dict[str, int]) -> dict[str, dict]:
    labels = {name: [f"l{j}" for j in range(w)] for name, w in widths.items()}
    return {
        n: {"problem_type": "multi_label_classification", "labels": labels[n], "metrics": ["f1_micro"]} for n in widths
    }


def test_multi_label_tasks_of_different_widths_share_a_group(tmp_path):
    widths = {"m28": 28, "m7": 7, "m4": 4}
    rows = {"train": _multi_rows(20, 0, widths), "dev": _multi_rows(10, 1, widths)}
    cards = _multi_cards(widths)
    _write_cards(tmp_path, cards, rows)
    stream = make_streams(load_cards(tmp_path))[0]
    split = stream_split(stream, "train", LoadContext())
    for k, name in enumerate(stream.task_names):
        width, values = widths[name], split[f"label_{k}"]
        assert {len(v) for v in values} == {width}
        assert values == [[int(f"l{j}" in r[name]) for j in range(width)] for r in rows["train"]]


def test_labels_out_of_range_are_refused_naming_task_and_row():
    import datasets

    from harness.api import TaskSpec

    def load(split, ctx):
        return datasets.Dataset.from_dict({"text": ["x", "y", "z"], "label": [0, 2, 1]})

    task = TaskSpec("t.bad", "single_label_classification", ("text",), load, ("accuracy",), ("no", "yes"))
    with pytest.raises(DataError, match=r"task 't.bad' split 'train': row 1 of label column 'label' is not a class"):
        stream_split(make_streams([task])[0], "train", LoadContext())


def test_tuned_thresholds_predict_a_rare_label_the_fixed_one_misses():
    from harness.training.thresholds import tune_thresholds

    rng = np.random.default_rng(0)
    refs = (rng.random((200, 2)) < [0.5, 0.05]).astype(np.int64)
    # label 1 is rare and its probabilities are low but informative: positives ~0.3, negatives ~0.1
    probs = np.where(refs == 1, [0.8, 0.3], [0.2, 0.1]) + rng.normal(0, 0.03, refs.shape)
    refs[5] = MISSING_LABEL
    thresholds = tune_thresholds(probs, refs)
    assert thresholds[1] < 0.3 < 0.5  # below the positives, where p > 0.5 never fires
    keep = (refs != MISSING_LABEL).all(axis=1)
    tuned = probs[keep, 1] > thresholds[1]
    assert (tuned == refs[keep, 1].astype(bool)).mean() > 0.95 and not (probs[keep, 1] > 0.5).any()
    assert 0.2 < thresholds[0] < 0.8


def _run(
    args: list[str], out: Path, env: dict[str, str], launch: list[str] | None = None
) -> subprocess.CompletedProcess:
    command = (launch or [sys.executable, "-m", "harness"]) + ["run", *args, "--output", str(out)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _job_histories(run: Path) -> dict[str, list[dict]]:
    return {p.parent.name: json.loads(p.read_text())["history"] for p in sorted(run.glob("jobs/*/result.json"))}


@pytest.mark.slow
def test_opposite_labels_in_one_group_are_learnt_apart(tmp_path):
    rows = {"train": _opposite_rows(96, 0), "dev": _opposite_rows(32, 1), "test": _opposite_rows(32, 2)}
    card = {"problem_type": "single_label_classification", "labels": ["no", "yes"], "metrics": ["accuracy"]}
    _write_cards(tmp_path / "cards", {"a": card, "b": card}, rows)
    args = ["--tasks-dir", str(tmp_path / "cards"), "--tasks", "a,b", "--profile", "smoke", "--set", "epochs=4"]
    assert main(["run", *args, "--output", str(tmp_path / "run")]) == 0
    tasks = _results(tmp_path / "run")["tasks"]
    for name in ("a", "b"):
        assert tasks[name]["split"] == "test"
        assert tasks[name]["stl"]["accuracy"]["mean"] > 0.9 and tasks[name]["mtl"]["accuracy"]["mean"] > 0.9
    # the reported metrics alone cannot show a mix-up (b would be trained *and* scored on a's labels):
    # the MTL model's own heads must predict each task's own test labels
    import torch

    from harness.training.saved import load_saved

    saved = load_saved(next((tmp_path / "run").glob("jobs/mtl-*/best")))  # the saved heads, as harness predict
    model, tokenizer = saved.model, saved.tokenizer
    inputs = tokenizer([r["text"] for r in rows["test"]], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(tasks=["a", "b"], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    for name in ("a", "b"):
        expected = np.array([["no", "yes"].index(r[name]) for r in rows["test"]])
        assert (logits[name].argmax(-1).numpy() == expected).mean() > 0.9, name


@pytest.mark.slow
def test_multi_label_group_runs_with_dev_tuned_thresholds(tmp_path, capsys):
    widths = {"m28": 28, "m7": 7, "m4": 4}
    rows = {"train": _multi_rows(64, 0, widths), "dev": _multi_rows(32, 1, widths), "test": _multi_rows(32, 2, widths)}
    cards = _multi_cards(widths)
    _write_cards(tmp_path / "cards", cards, rows)
    # stl and the all-task run only: one MTL job (the groupers' groups are not about thresholds)
    args = ["--tasks-dir", str(tmp_path / "cards"), "--tasks", "m28,m7,m4", "--profile", "smoke", "--stages", "stl,all"]
    assert (
        main(
            [
                "run",
                *args,
                "--set",
                "epochs=1",
                "--set",
                "multilabel_threshold=tuned",
                "--output",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    results = _results(tmp_path / "run")
    assert {name: entry["thresholds"] for name, entry in results["tasks"].items()} == dict.fromkeys(widths, "tuned")
    mtl = json.loads(next((tmp_path / "run").glob("jobs/mtl-*/result.json")).read_text())
    assert mtl["thresholds"]["mode"] == "tuned"
    assert {t: len(v) for t, v in mtl["thresholds"]["values"].items()} == widths
    assert "thresholds tuned on dev" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_match_one_on_uneven_splits_with_missing_labels(tmp_path):
    """30/13/11 rows, batch 4: the last batches are partial, and missing labels fall unevenly on the ranks."""
    args = ["--tasks", "uneven.reg,uneven.a,uneven.b", "--profile", "smoke"]
    args += ["--set", "dropout=0", "--set", "batch_size=4", "--set", "eval_batch_size=4", "--set", "epochs=2"]
    args += ["--set", "observe_every=2", "--set", "probe_batch=6"]  # gradients and TAG measured in both
    env = subprocess_env(HARNESS_PLUGIN_MODULES="uneven", ACCELERATE_USE_CPU="1")
    runs, results = {}, {}
    for n in (1, 2):
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]
        done = _run(args, tmp_path / f"p{n}", env, [*launch, "-m", "harness"])
        assert done.returncode == 0, done.stderr[-3000:]
        manifest = json.loads((tmp_path / f"p{n}" / "manifest.json").read_text())
        assert manifest["hardware"]["num_processes"] == n  # n ranks really ran
        runs[n] = _job_histories(tmp_path / f"p{n}")
        results[n] = _results(tmp_path / f"p{n}")
    # 3 STL, the untrained model's measurements, the all-task MTL run, and the groupers' groups
    assert runs[1].keys() == runs[2].keys() and len(runs[1]) >= 5
    for job, history in runs[1].items():
        for one, two in zip(history, runs[2][job], strict=True):
            assert two["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5), job
            for split in ("dev", "test"):
                for task, values in one[split].items():
                    for metric, value in values.items():
                        assert two[split][task][metric] == pytest.approx(value, abs=1e-5), (job, split, task, metric)
    # the predictors' measurements agree too: probe-set features (CKA), gradients at the start and
    # during training (all-reduced once per measurement), TAG
    for job in runs[1]:
        one, two = tmp_path / "p1" / "jobs" / job, tmp_path / "p2" / "jobs" / job
        if (one / "features.npy").exists():
            # float32 on disk; the 2-rank model differs from the 1-rank one by all-reduce rounding
            np.testing.assert_allclose(np.load(two / "features.npy"), np.load(one / "features.npy"), atol=1e-4)
    observed = 0
    for name, p1 in results[1]["predictors"].items():
        p2 = results[2]["predictors"][name]
        assert (p1["matrix"] is None) == (p2["matrix"] is None), name
        if p1["matrix"] is not None:
            a, b = (np.array(m, dtype=float) for m in (p1["matrix"], p2["matrix"]))
            np.testing.assert_allclose(b, a, atol=1e-4, err_msg=name)
            observed += name in ("grad_cosine_init", "grad_cosine_train", "tag", "cka_linear")
    assert observed == 4


def _uneven_tasks(names: list[str]):
    import uneven

    from harness.core.plugins import build_registries, new_manager

    registries = build_registries(new_manager(autoload=False, extra=[("uneven", uneven)]))
    return [registries.tasks.get(n) for n in names], registries.metrics


@pytest.mark.slow
def test_resume_under_gradient_accumulation_equals_a_straight_run(tmp_path, monkeypatch):
    """8 micro-batches per epoch, accumulation 3: the epoch ends in a window of 2, which must not leak."""
    from harness.core import config
    from harness.protocol.execute import make_accelerator
    from harness.training import runner
    from harness.training.runner import TrainSetup, run_job

    tasks, metrics = _uneven_tasks(["uneven.a", "uneven.b"])
    sets = ["batch_size=4", "grad_accum_steps=3", "epochs=3", "warmup_ratio=0.2", "state_every_minutes=0"]
    cfg = config.resolve("smoke", sets=sets)
    acc = make_accelerator(cfg)
    job = TrainSetup("mtl", tasks, 0, metrics, cfg, LoadContext(), acc)
    schedulers = []
    make_schedule = runner.linear_schedule

    def capture(optimizer, warmup, total):
        schedulers.append((make_schedule(optimizer, warmup, total), total))
        return schedulers[-1][0]

    # patched in the runner: importing some transformers classes replaces transformers' lazy
    # module in sys.modules (transformers 5), which would drop a patch on transformers itself
    monkeypatch.setattr(runner, "linear_schedule", capture)
    straight = run_job(job, tmp_path / "straight", resume=False).record
    acc.free_memory()  # as execute does after every job: the next job's save_state holds only its own objects
    scheduler, total = schedulers[0]
    assert total == 3 * 3  # ceil(8 / 3) optimizer steps per epoch, 3 epochs
    assert scheduler.last_epoch == total and scheduler.get_last_lr()[0] == 0.0  # the decay reaches zero

    class Killed(Exception):
        pass

    save = runner.save_state

    def kill_after_first_epoch(acc, job_dir, history, observers=(), best=None):
        save(acc, job_dir, history, observers, best)
        raise Killed

    monkeypatch.setattr(runner, "save_state", kill_after_first_epoch)
    with pytest.raises(Killed):
        run_job(job, tmp_path / "killed", resume=False)
    acc.free_memory()  # a real kill ends the process; here, drop the killed job's prepared objects
    monkeypatch.setattr(runner, "save_state", save)
    resumed = run_job(job, tmp_path / "killed", resume=True).record
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in straight["history"]]
    assert resumed["metrics"] == straight["metrics"]


@pytest.mark.slow
def test_group_of_tasks_with_and_without_test_labels_reports_each_on_its_split(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "uneven")
    args = ["--tasks", "uneven.reg,uneven.notest", "--profile", "smoke", "--set", "epochs=1"]
    assert main(["run", *args, "--output", str(tmp_path / "run")]) == 0
    tasks = _results(tmp_path / "run")["tasks"]
    assert tasks["uneven.reg"]["split"] == "test" and tasks["uneven.notest"]["split"] == "dev"
    assert tasks["uneven.notest"]["gap"]["n"] == 1
    table = capsys.readouterr().err
    assert "uneven.notest" in table and " dev " in table and " test " in table
    title = next(line for line in table.splitlines() if "MTL - STL gap per task" in line)
    assert "(1 seed; no interval with one seed)" in title and "95%" not in title


@pytest.mark.slow
def test_task_without_labels_is_refused_before_training_and_the_run_can_be_redone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "uneven")
    out = tmp_path / "run"
    args = ["--tasks", "uneven.a,uneven.b", "--profile", "smoke", "--set", "epochs=1", "--output", str(out)]
    assert main(["run", *args, "--data-option", "unlabelled=uneven.b"]) == 2
    err = capsys.readouterr().err
    assert "task 'uneven.b' has no labelled row in split 'train'; it cannot be trained" in err
    assert "max_train_examples" not in err  # the split (30 rows) is smaller than the smoke slice: no slice to blame
    assert not (out / "jobs").exists()  # nothing was trained
    # the run trained nothing: the same folder takes corrected settings, with or without --resume
    assert main(["run", *args, "--resume"]) == 0
    assert (out / "results.json").exists()


def test_early_stopping_is_decided_from_the_history():
    from harness.training.runner import stopped_early

    history = [{"selection": s} for s in (0.5, 0.7, 0.6, 0.7)]  # best first reached at epoch 2
    assert not stopped_early(history[:2], patience=1)
    assert stopped_early(history[:3], patience=1) and not stopped_early(history[:3], patience=2)
    assert stopped_early(history, patience=2)  # a tie is no improvement
    assert not stopped_early(history, patience=0)


@pytest.mark.slow
def test_early_stopped_job_resumes_to_the_same_result(tmp_path, monkeypatch):
    """patience=1 on a task that peaks early: the job stops before max epochs, reports its best
    epoch, saves no state after its stopping epoch, and a job killed after that epoch resumes
    from its last state (with the best epoch's weights) to the same result and weights."""
    from harness.core import config
    from harness.protocol.execute import make_accelerator
    from harness.training import runner
    from harness.training.runner import TrainSetup, run_job

    tasks, metrics = _uneven_tasks(["uneven.a"])
    sets = ["batch_size=4", "epochs=8", "patience=1", "learning_rate=0.01", "state_every_minutes=0"]
    cfg = config.resolve("smoke", sets=sets)
    acc = make_accelerator(cfg)
    job = TrainSetup("stl", tasks, 0, metrics, cfg, LoadContext(), acc)
    straight = run_job(job, tmp_path / "straight", resume=False).record
    acc.free_memory()  # as execute does after every job: the next job's save_state holds only its own objects
    trained = straight["epochs_trained"]
    assert trained < 8 and trained == straight["best_epoch"] + 1  # stopped one epoch after the last best

    class Killed(Exception):
        pass

    save, write_best, calls = runner.save_state, runner.save_best, []

    def count(acc, job_dir, history, observers=(), best=None):
        save(acc, job_dir, history, observers, best)
        calls.append(len(history))

    def kill_at_the_end(acc, model, folder, info):  # after the stopping epoch, before anything is written
        raise Killed

    monkeypatch.setattr(runner, "save_state", count)
    monkeypatch.setattr(runner, "save_best", kill_at_the_end)
    with pytest.raises(Killed):
        run_job(job, tmp_path / "killed", resume=False)
    acc.free_memory()
    assert calls == list(range(1, trained))  # every epoch but the stopping one (0 minutes: each epoch)
    assert not (tmp_path / "killed" / "best").exists()  # the best weights are written once, at the end
    monkeypatch.setattr(runner, "save_best", write_best)
    resumed = run_job(job, tmp_path / "killed", resume=True).record
    assert resumed["epochs_trained"] == trained and resumed["metrics"] == straight["metrics"]
    assert calls == list(range(1, trained))  # the resumed job trained only the stopping epoch: no save
    _assert_same_best_weights(tmp_path / "straight", tmp_path / "killed")


def _assert_same_best_weights(one: Path, two: Path) -> None:
    import torch
    from safetensors.torch import load_file

    for name in ("model.safetensors", "heads.safetensors"):  # the encoder and the heads (harness.training.saved)
        weights = [load_file(str(run / "best" / name)) for run in (one, two)]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # bit for bit


@pytest.mark.slow
def test_resume_after_the_best_epoch_restores_its_weights_from_the_state(tmp_path, monkeypatch):
    """The best weights live in memory during training: a state saved after a later epoch carries
    them (best.safetensors), and the resumed job reports and writes the same best epoch's weights."""
    from harness.core import config
    from harness.protocol.execute import make_accelerator
    from harness.training import runner
    from harness.training.runner import TrainSetup, run_job

    tasks, metrics = _uneven_tasks(["uneven.a"])
    sets = ["batch_size=4", "epochs=6", "learning_rate=0.01", "state_every_minutes=0"]
    acc = make_accelerator(config.resolve("smoke", sets=sets))
    job = TrainSetup("stl", tasks, 0, metrics, config.resolve("smoke", sets=sets), LoadContext(), acc)
    straight = run_job(job, tmp_path / "straight", resume=False).record
    acc.free_memory()
    best = straight["best_epoch"]
    assert best <= 4, f"the task should peak early at this learning rate (best epoch {best} of 6)"

    class Killed(Exception):
        pass

    save = runner.save_state

    def kill_after_the_best(acc, job_dir, history, observers=(), best_weights=None):
        save(acc, job_dir, history, observers, best_weights)
        if len(history) == best + 1:
            raise Killed

    monkeypatch.setattr(runner, "save_state", kill_after_the_best)
    with pytest.raises(Killed):
        run_job(job, tmp_path / "killed", resume=False)
    acc.free_memory()
    assert (tmp_path / "killed" / "state" / "best.safetensors").exists()
    monkeypatch.setattr(runner, "save_state", save)
    resumed = run_job(job, tmp_path / "killed", resume=True).record
    assert resumed["best_epoch"] == best and resumed["history"] == straight["history"]
    _assert_same_best_weights(tmp_path / "straight", tmp_path / "killed")
