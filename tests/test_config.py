"""RunConfig resolution: profiles, files, --set, flags; validated types, suggestions on typos."""

from __future__ import annotations

import dataclasses

import pytest

from harness.core.config import PROFILES, RunConfig, resolve
from harness.errors import ConfigError


def test_resolution_order(tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_text("epochs = 7\nlearning_rate = 0.01\nbf16 = true\n")
    cfg = resolve("smoke", config_file, ["epochs=5"], seeds=3, model=None)
    assert cfg.model == PROFILES["smoke"]["model"]  # profile over default, None flag ignored
    assert (cfg.epochs, cfg.learning_rate, cfg.bf16, cfg.seeds) == (5, 0.01, True, 3)
    assert cfg.seed_list == [0, 1, 2]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epoch=2", "unknown config key 'epoch'; did you mean 'epochs'?"),
        ("epochs=two", "epochs must be int, got 'two'"),
        ("bf16=maybe", "bf16 must be bool"),
        ("epochs", "expected key=value"),
        ("sampling=random", "sampling must be one of proportional, temperature, uniform"),
        ("batch_size=0", "batch sizes must be positive"),
    ],
)
def test_bad_overrides(item, message):
    with pytest.raises(ConfigError, match=message):
        resolve("default", None, [item])


def test_bad_file_value_names_the_file(tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_text('epochs = "3"\n')
    with pytest.raises(ConfigError, match=r"c.toml: epochs must be int, got '3'"):
        resolve("default", config_file)


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'fast'; choose one of: smoke, science-smoke, default"):
        resolve("fast")


def test_config_is_frozen_and_hash_ignores_seeds():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 2  # type: ignore[misc]
    assert cfg.training_hash() == dataclasses.replace(cfg, seeds=5, seed=3).training_hash()
    assert cfg.training_hash() != dataclasses.replace(cfg, learning_rate=1e-3).training_hash()


def test_config_file_with_a_byte_order_mark_is_read(tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_bytes(b"\xef\xbb\xbfepochs = 4\n")
    assert resolve("default", config_file).epochs == 4


def test_config_file_that_is_not_utf8_names_file_and_line(tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_bytes('epochs = 4\nmodel = "café"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"^config file \S*c\.toml: line 2: not UTF-8 text \(byte 0xe9\)"):
        resolve("default", config_file)


def test_unreadable_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config file \S* does not exist"):
        resolve("default", tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"config file \S*: cannot read the file: Is a directory"):
        resolve("default", tmp_path)
