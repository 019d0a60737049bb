"""Bad input found by a new user: one clear line and a non-zero exit, nothing written or lost."""

from __future__ import annotations

import os

import datasets
import pytest

from harness.api import LoadContext, TaskSpec
from harness.cli import main
from harness.core import config
from harness.data.streams import make_streams, stream_split, tokenize
from harness.errors import ConfigError
from harness.training.model import check_model, load_tokenizer

TOY = ["run", "--tasks", "toy.colour,toy.size", "--profile", "smoke", "--set", "epochs=1"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("learning_rate=-1", "learning_rate must be a positive finite number"),
        ("learning_rate=nan", "learning_rate must be a positive finite number"),
        ("head_learning_rate=-5", "head_learning_rate must be >= 0"),
        ("weight_decay=-1", "weight_decay must be >= 0"),
        ("weight_decay=inf", "weight_decay must be >= 0 and finite"),
    ],
)
def test_impossible_optimizer_settings_are_config_errors(setting, message):
    with pytest.raises(ConfigError, match=message):
        config.resolve("smoke", sets=[setting])


def test_models_that_cannot_load_or_are_too_short_fail_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"max_length=2000 exceeds the 512 positions of model 'tiny'"):
        check_model("tiny", 2000)
    with pytest.raises(ConfigError, match=r"--model /nonexistent/model: the folder does not exist"):
        check_model("/nonexistent/model", 64)
    with pytest.raises(ConfigError, match=r"the folder has no config.json"):
        check_model(str(tmp_path), 64)
    with pytest.raises(ConfigError, match=r"is not a preset \(minilm, tiny\).*Did you mean 'minilm'\?") as info:
        check_model("minlm", 64)  # offline: not a cached hub id either
    assert "\n" not in str(info.value)


def test_bad_model_is_refused_before_the_run_directory_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    assert main([*TOY, "--model", "minlm", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'minilm'?" in err and "Traceback" not in err and "STL +" not in err
    assert not (tmp_path / "run").exists()


def test_output_that_cannot_be_created_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    (tmp_path / "file.txt").write_text("mine\n")
    assert main([*TOY, "--output", str(tmp_path / "file.txt" / "sub")]) == 2
    assert "cannot create the run directory" in capsys.readouterr().err
    assert (tmp_path / "file.txt").read_text() == "mine\n"


def test_spine_generate_into_a_path_through_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("mine\n")
    assert main(["spine", "generate", "--out", str(tmp_path / "file.txt" / "corpus"), "--reports", "2"]) == 2
    assert "cannot create the folder" in capsys.readouterr().err


def _stream():
    rows = {"text": [f"row {i} text" for i in range(20)], "label": [i % 2 for i in range(20)]}
    task = TaskSpec(
        "t.a",
        "single_label_classification",
        ("text",),
        lambda s, c: datasets.Dataset.from_dict(rows),
        ("accuracy",),
        ("n", "y"),
    )
    return make_streams([task])[0]


def test_damaged_tokenization_cache_file_is_rebuilt(caplog):
    stream = _stream()
    split = stream_split(stream, "train", LoadContext())
    first = tokenize(split, stream, load_tokenizer("tiny"), 32, show_progress=False)
    expected = [list(ids) for ids in first["input_ids"]]
    path = first.cache_files[0]["filename"]
    del first
    with open(path, "r+b") as f:  # a killed write: the file is cut short
        f.truncate(os.path.getsize(path) // 3)
    again = tokenize(stream_split(stream, "train", LoadContext()), stream, load_tokenizer("tiny"), 32, False)
    assert [list(ids) for ids in again["input_ids"]] == expected
    assert any("damaged; rebuilding it" in r.getMessage() for r in caplog.records)


def test_cache_folder_that_is_a_file_is_a_config_error(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a folder\n")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    stream = _stream()
    with pytest.raises(ConfigError, match="point HARNESS_CACHE at a writable folder"):
        tokenize(stream_split(stream, "train", LoadContext()), stream, load_tokenizer("tiny"), 32, False)


def test_interrupted_run_says_how_to_continue(tmp_path, monkeypatch, capsys):
    import harness.protocol.experiment

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    monkeypatch.setattr(harness.protocol.experiment, "run_experiment", interrupted)
    assert main([*TOY, "--output", str(tmp_path / "run")]) == 130
    assert "interrupted: finished jobs and saved epochs are kept" in capsys.readouterr().err


def test_seeds_outside_the_generators_range_are_config_errors():
    """Found by a fresh user: seed=-1 passed the checks and failed every job in set_seed."""
    with pytest.raises(ConfigError, match=r"seed must be >= 0 and seed \+ seeds <= 2\*\*32"):
        config.resolve("smoke", sets=["seed=-1"])
    with pytest.raises(ConfigError, match=r"data_seed must be in \[0, 2\*\*32\)"):
        config.resolve("smoke", sets=[f"data_seed={2**32}"])


def test_damaged_features_of_a_finished_job_are_one_line_on_resume(tmp_path, monkeypatch, capsys):
    """Found by a fresh user: a cut features.npy in a run folder gave a numpy traceback (exit 1)."""
    monkeypatch.setenv("HARNESS_PLUGIN_MODULES", "toy")
    out = tmp_path / "run"
    assert main([*TOY, "--output", str(out)]) == 0
    (out / "results.json").unlink()  # killed before its record: the science is computed again on --resume
    (out / "manifest.json").unlink()
    features = sorted(out.glob("jobs/stl-*/features.npy"))[0]
    features.write_bytes(features.read_bytes()[:100])
    capsys.readouterr()
    assert main([*TOY, "--output", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the job's features are damaged" in errors[0] and "--resume" in errors[0]
    assert "Traceback" not in err and not (out / "results.json").exists()
