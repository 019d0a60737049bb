"""The run's progress: jobs done/total, current job and phase, elapsed and remaining time."""

from __future__ import annotations

import logging

from harness.training.progress import TRAIN_UNITS, RunProgress


def test_plain_progress_lines_name_jobs_phase_and_remaining_time(caplog):
    progress = RunProgress(total_jobs=3, live=False, interval=0.0)
    progress.plan([100.0, 100.0, 200.0])
    progress.skip_job(100.0)  # finished in an earlier invocation
    assert "remaining: estimating" in progress.status()
    progress.start_job("[2/3] STL a seed 0", 100.0, epochs=2)
    progress.phase("epoch 1/2 train", 5)
    with caplog.at_level(logging.INFO, logger="harness"):
        progress.advance(rows=4, train=True)
    line = caplog.records[-1].getMessage()
    assert line.startswith("progress: jobs 1/3 · [2/3] STL a seed 0 · epoch 1/2 train 1/5 · elapsed ")
    assert "remaining: estimating" in line  # no job finished in this invocation yet
    assert progress.units_done == 100.0 + 4 * TRAIN_UNITS
    progress.resume(epochs_done=1)  # a resumed job counts its trained epochs as done
    assert progress.units_done == 100.0 + 4 * TRAIN_UNITS + 50.0
    progress.phase("eval dev", 2)
    progress.advance(rows=8, train=False)
    progress.finish_job()
    assert progress.jobs_done == 2 and progress.units_done == 200.0  # the estimate, whatever was counted
    assert progress.units_measured == 50.0  # this invocation's part: the job's cost less its resumed epoch
    assert "remaining ~" in progress.status()


def test_the_rate_counts_whole_jobs_from_the_first_start(monkeypatch):
    """Parallel workers spend their first seconds loading; a job that stops early does less than
    planned: the rate is finished jobs' whole cost (and steps since) over the time since the
    first job started, not the steps measured since the data check."""
    clock = [0.0]
    monkeypatch.setattr("harness.training.progress.time.perf_counter", lambda: clock[0])
    progress = RunProgress(total_jobs=2, live=False, interval=3600.0)
    progress.plan([100.0, 100.0])
    clock[0] = 30.0  # the data check
    progress.start_job("a", 100.0, epochs=4, key="a")
    progress.start_job("b", 100.0, epochs=4, key="b")
    clock[0] = 35.0
    progress.job("a").advance(rows=1, train=True)
    assert progress.remaining() is None  # nothing finished: estimating
    clock[0] = 40.0
    progress.finish_job("a")  # stopped early: its 100 units took 10 s
    # 100 units left (job b) at the rate of job a: its 100 units in the 10 s since the first start
    assert progress.remaining() == 10.0
    clock[0] = 50.0
    progress.job("b").advance(rows=10, train=True)  # b's steps join the rate, over 20 s now
    done = 100.0 + 10 * TRAIN_UNITS
    assert abs(progress.remaining() - (200.0 - done) / (done / 20.0)) < 1e-9


def test_no_line_before_the_interval_and_a_live_display_draws_no_log_lines(caplog):
    quiet = RunProgress(total_jobs=1, live=False, interval=3600.0)
    quiet.plan([10.0])
    quiet.start_job("[1/1] STL a seed 0", 10.0, epochs=1)
    quiet.phase("epoch 1/1 train", 1)
    with caplog.at_level(logging.INFO, logger="harness"):
        quiet.advance(rows=1, train=True)
        live = RunProgress(total_jobs=1, live=True, interval=0.0)
        live.plan([10.0])
        live.start_job("[1/1] STL a seed 0", 10.0, epochs=1)
        live.phase("epoch 1/1 train", 1)
        live.advance(rows=1, train=True)
        live.close()
    assert not [r for r in caplog.records if r.getMessage().startswith("progress:")]
