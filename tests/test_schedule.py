import pytest

from progan_tf.schedule import Schedule


def test_paper_schedule_for_1024():
    schedule = Schedule()
    phases = schedule.phases()
    assert [(p.resolution, p.name) for p in phases[:3]] == [(4, "stable"), (8, "fade"), (8, "stable")]
    assert len(phases) == 17 and phases[-1].resolution == 1024 and not phases[-1].fading
    fade_1024 = phases[-2]
    assert (fade_1024.start, fade_1024.end) == (9_000_000, 9_600_000)
    assert schedule.total_images == 12_000_000
    assert [schedule.batch_size(r) for r in (4, 32, 64, 256, 1024)] == [128, 64, 32, 8, 4]
    assert schedule.learning_rate_at(512) == 0.001 and schedule.learning_rate_at(1024) == 0.0015


def test_alpha_is_linear_in_images_seen():
    schedule = Schedule(max_resolution=16)
    fade = schedule.phase_at(600_000)
    assert fade.fading and fade.resolution == 8
    assert fade.alpha(600_000) == 0.0
    assert fade.alpha(750_000) == pytest.approx(0.25)
    assert schedule.phase_at(1_199_999).alpha(1_199_999) == pytest.approx(1.0, abs=1e-5)
    stable = schedule.phase_at(1_200_000)
    assert not stable.fading and stable.alpha(1_200_000) == 1.0
    assert schedule.phase_at(10**12).index == schedule.phases()[-1].index


def test_overrides_and_errors():
    schedule = Schedule(max_resolution=32, fade_kimg=1, stable_kimg=2, total_kimg=None,
                        batch_sizes={4: 8, 32: 4}, learning_rates={32: 0.002}, default_batch=6)
    assert [p.end for p in schedule.phases()] == [2000, 3000, 5000, 6000, 8000, 9000, 11000]
    assert [p.batch_size for p in schedule.phases()] == [8, 6, 6, 6, 6, 4, 4]
    assert schedule.phases()[-1].learning_rate == 0.002
    with pytest.raises(ValueError, match="total_kimg"):
        Schedule(max_resolution=32, total_kimg=1).phases()
    with pytest.raises(ValueError, match="start_resolution"):
        Schedule(max_resolution=32, start_resolution=6)
