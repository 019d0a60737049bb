"""The run's progress: jobs done/total, current job and phase, elapsed and remaining time."""

from __future__ import annotations

import logging

from harness.training.progress import EVAL_UNITS, TRAIN_UNITS, RunProgress


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
    assert "remaining ~" in line
    assert progress.units_done == 100.0 + 4 * TRAIN_UNITS
    progress.resume(epochs_done=1)  # a resumed job counts its trained epochs as done
    assert progress.units_done == 100.0 + 4 * TRAIN_UNITS + 50.0
    progress.phase("eval dev", 2)
    progress.advance(rows=8, train=False)
    progress.finish_job()
    assert progress.jobs_done == 2 and progress.units_done == 200.0  # the estimate, whatever was counted
    assert progress.units_measured == 4 * TRAIN_UNITS + 8 * EVAL_UNITS  # only this invocation's work sets the rate


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
