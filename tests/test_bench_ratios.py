"""The benchmarks' ratio recorder: interleaving order, medians and ratios, the table, the fixture end to end.

No timing is asserted: the measured functions are counters and no-ops, and the targets are
chosen so that any machine meets (or misses) them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.benchmarks.ratios import RatioRecord, Side, interleave, markdown, write_table
from tests.conftest import ROOT, subprocess_env


def test_interleave_alternates_in_abba_order_after_the_warmup():
    calls: list[str] = []
    num, den = interleave(lambda: calls.append("n"), lambda: calls.append("d"), rounds=4, warmup=1)
    assert calls == ["d", "n"] + ["d", "n", "n", "d", "d", "n", "n", "d"]
    assert len(num) == len(den) == 4 and all(t >= 0 for t in num + den)


def test_ratio_is_the_ratio_of_medians_and_the_target_decides():
    fast = Side.of("fast", [1.0, 9.0, 2.0, 2.0, 3.0], None, "s")  # median 2 (the outlier does not count)
    slow = Side.of("slow", [4.0, 4.0, 5.0, 3.0, 40.0], None, "s")  # median 4
    record = RatioRecord.of("t", fast, slow, target=0.6, direction="<=", setup={"model": "tiny"})
    assert record.ratio == pytest.approx(0.5) and record.met is True and record.rounds == 5
    assert RatioRecord.of("t", fast, slow, target=0.4, direction="<=").met is False
    assert RatioRecord.of("t", slow, fast, target=2.0, direction=">=").met is True
    assert RatioRecord.of("t", slow, fast, target=2.1, direction=">=").met is False
    assert RatioRecord.of("t", slow, fast, target=None, direction=">=").met is None


def test_rates_divide_the_work_by_each_round_s_seconds():
    side = Side.of("harness", [2.0, 4.0, 1.0, 8.0, 2.0], 2048, "examples/s")
    assert side.values == (1024.0, 512.0, 2048.0, 256.0, 1024.0) and side.median == 1024.0
    assert side.seconds == (2.0, 4.0, 1.0, 8.0, 2.0)


def test_bad_records_are_refused():
    a, b = Side.of("a", [1.0] * 5, None, "s"), Side.of("b", [1.0] * 5, 10, "examples/s")
    with pytest.raises(ValueError, match="direction"):
        RatioRecord.of("t", a, a, target=1.0, direction=">")
    with pytest.raises(ValueError, match="numerator in s, denominator in examples/s"):
        RatioRecord.of("t", a, b, target=1.0, direction=">=")
    with pytest.raises(ValueError, match="positive"):
        RatioRecord.of("t", Side.of("z", [0.0] * 5, None, "s"), a, target=1.0, direction=">=")


def test_table_files_hold_every_record_and_say_which_targets_are_missed(tmp_path):
    a, b = Side.of("harness", [1.0] * 5, None, "s"), Side.of("bare", [2.0] * 5, None, "s")
    records = [
        RatioRecord.of("overhead", a, b, target=1.1, direction="<=", setup={"rows": 2048}),
        RatioRecord.of("speed-up", a, b, target=1.0, direction=">="),
    ]
    json_path, md_path = write_table(records, tmp_path / "out", {"commit": "abc1234", "date": "today"})
    data = json.loads(json_path.read_text())
    assert [r["name"] for r in data["ratios"]] == ["overhead", "speed-up"]
    assert [r["met"] for r in data["ratios"]] == [True, False] and data["meta"]["commit"] == "abc1234"
    assert data["ratios"][0]["numerator"]["values"] == [1.0] * 5
    table = md_path.read_text()
    assert table == markdown(records, {"commit": "abc1234", "date": "today"})
    rows = [line for line in table.splitlines() if line.startswith("| overhead") or line.startswith("| speed-up")]
    assert "**0.500** | <= 1.1 | met |" in rows[0] and "rows=2048" in rows[0]
    assert "**0.500** | >= 1 | NOT MET |" in rows[1]


BENCH = """
    import time

    def noop():
        pass

    def test_met(ratio):
        ratio.measure("met", noop, noop, target=1e9, direction="<=", setup={"model": "none"})

    def test_missed(ratio):
        ratio.measure("first", noop, noop, target=None, direction=">=")
        ratio.measure("missed", noop, noop, target=1e9, direction=">=", work=10, unit="examples/s")
        raise AssertionError("not reached: the missed target fails the test")

    def test_too_few_rounds(ratio):
        ratio.measure("few", noop, noop, rounds=3, target=1.0, direction=">=")

    def test_figures(ratio):
        ratio.figure("bytes written", 111.0, "MB", limit=200, setup={"run": "smoke"})
        ratio.figure("peak memory", 3.3, "GiB")
        ratio.figure("too much", 5.0, "GiB", limit=4.0)
        raise AssertionError("not reached: the missed limit fails the test")
"""


@pytest.mark.parametrize("benchmarks", ["--benchmark-only", "--benchmark-disable"])
def test_the_fixture_records_every_ratio_writes_the_table_and_fails_a_missed_target(tmp_path, benchmarks):
    """A real pytest session with the benchmarks' conftest: pedantic-timed and self-timed paths."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("from tests.benchmarks.conftest import *  # noqa: F403\n")
    (suite / "test_fake_bench.py").write_text(textwrap.dedent(BENCH))
    out = tmp_path / "bench"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suite),
            benchmarks,
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(suite),
        ],
        cwd=ROOT,
        env=subprocess_env(HARNESS_BENCH_DIR=str(out), PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "3 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "target not met: missed:" in done.stdout and "rounds must be >= 5" in done.stdout
    assert "limit not met: too much: 5 GiB (limit <= 4: NOT MET)" in done.stdout
    data = json.loads((out / "ratios.json").read_text())
    assert [(r["name"], r["met"], r["rounds"]) for r in data["ratios"]] == [
        ("met", True, 5),
        ("first", None, 5),
        ("missed", False, 5),
    ]
    assert data["ratios"][2]["numerator"]["unit"] == "examples/s" and data["meta"]["load_average_end"]
    assert data["meta"]["commit"] and data["meta"]["finished"] >= data["meta"]["date"]
    assert "| missed |" in (out / "ratios.md").read_text() and "benchmark ratios" in done.stdout
    assert [(f["name"], f["value"], f["unit"], f["met"]) for f in data["figures"]] == [
        ("bytes written", 111.0, "MB", True),
        ("peak memory", 3.3, "GiB", None),
        ("too much", 5.0, "GiB", False),
    ]
    table = (out / "ratios.md").read_text()
    assert "| bytes written | **111.0 MB** | <= 200 MB | met | run=smoke |" in table
    assert "| too much | **5 GiB** | <= 4 GiB | NOT MET |" in table
