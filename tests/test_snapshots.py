"""What a run shows while it trains (progan_tf/training/snapshots.py): durations and the progress line."""
from progan_tf.schedule import Schedule
from progan_tf.training.snapshots import format_duration, progress_line


def test_durations_read_as_hours_minutes_and_seconds():
    seconds = [0, 59.9, 61, 3600, 3661, 90061, -5]
    assert [format_duration(s) for s in seconds] == ["0m00s", "0m59s", "1m01s", "1h00m00s", "1h01m01s",
                                                     "25h01m01s", "0m00s"]


def test_progress_line_shows_bar_phase_alpha_kimg_rate_losses_and_eta():
    fade_8 = Schedule(max_resolution=8, total_kimg=None).phases()[1]
    line = progress_line(1500, 6000, fade_8, 0.25, 123.45, -0.5, 1.25, 3725)
    assert line == ("[#####...............]  25.0% | 8x8 fade   alpha 0.250 | kimg 1.5/6.0 |   123.5 img/s | "
                    "D -0.5000 G +1.2500 | ETA 1h02m05s")
    assert progress_line(7000, 6000, fade_8, 1.0, 1.0, 0.0, 0.0, 0).startswith("[" + "#" * 20 + "] 100.0%")
