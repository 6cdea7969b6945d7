"""The ETA model: from the schedule and FLOPs, not from the last tick's speed."""
import numpy as np
import pytest

from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training import progress

NET = NetworkConfig(resolution=32, latent_size=64, fmap_base=256, fmap_max=64)
SCHEDULE = Schedule(max_resolution=32, fade_kimg=20, stable_kimg=20, total_kimg=180,
                    batch_sizes={4: 32, 8: 32, 16: 32, 32: 32})
# The "machine" of these tests: 8 s per phase switch; its steps from 8x8 up take SLOWER times what the prior
# (the FLOPs at the probe's derated rate) says, its 4x4 steps START times (fixed per-step costs dominate them).
RATE, SWITCH, SLOWER, START = 20e9, 8.0, 1.3, 3.0
PROBE = RATE / progress.PRIOR_EFFICIENCY  # a probe that, derated, gives RATE


def true_step(eta, phase):
    return eta.prior(phase.index) * (START if phase.resolution == 4 else SLOWER)


def true_remaining(eta, images_seen):
    """What the run really has left on the test machine (no ticks or checkpoints)."""
    seconds, current = progress.EXPORT_SECONDS, SCHEDULE.phase_at(images_seen).index
    for phase in SCHEDULE.phases():
        left = phase.end - max(images_seen, phase.start)
        if left > 0:
            seconds += -(-left // phase.batch_size) * true_step(eta, phase) + (SWITCH if phase.index > current else 0)
    return seconds


def run_to(eta, images):
    """Feed the ETA model what the test machine measures, phase by phase, up to `images`."""
    for phase in SCHEDULE.phases():
        if phase.start >= images:
            break
        if phase.index:
            eta.cost("switch", SWITCH)
        steps = (min(phase.end, images) - phase.start) // phase.batch_size
        eta.steps(phase, steps, steps * true_step(eta, phase))


def test_eta_extrapolates_unreached_phases_by_flops():
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    eta.costs["tick"], eta.costs["checkpoint"] = [0.0], [0.0]
    run_to(eta, 30_000)  # 4x4 and half of the 8x8 fade measured; 16x16 and 32x32 not reached
    assert eta.remaining(30_000, 10_000, 20_000) == pytest.approx(true_remaining(eta, 30_000), rel=1e-6)
    # The current speed (the 8x8 fade's) would predict less than 40 % of it: 32x32 steps cost more.
    naive = (SCHEDULE.total_images - 30_000) / 32 * true_step(eta, SCHEDULE.phase_at(30_000))
    assert naive < 0.4 * true_remaining(eta, 30_000)


def test_the_start_resolution_does_not_scale_the_others():
    """In one demo run on the Zen 4 kind the 4x4 steps took 1.19x their prior, the larger ones 0.67-0.92x:
    scaled by the 4x4 phase, the larger phases would be expected 1.3-1.8x too slow."""
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    run_to(eta, 20_000)  # only 4x4 measured, at START times its prior
    for phase in SCHEDULE.phases()[1:]:
        assert eta.step_seconds(phase) == pytest.approx(eta.prior(phase.index))
    run_to(eta, 30_000)  # the 8x8 fade too: every larger phase at its ratio
    for phase in SCHEDULE.phases()[1:]:
        assert eta.step_seconds(phase) == pytest.approx(SLOWER * eta.prior(phase.index))


def test_slow_conv_shapes_count_for_more():
    """The demo's 16-channel 32x32 convs ran at 0.75 of the rate of its 8x8 and 16x16 ones, and by FLOPs
    alone its ETAs were 26-36 % short until the 32x32 phases ran; each conv's FLOPs now count at the rate
    of its shape's probe."""
    def probe(keys, seconds):  # this "machine" runs the 32x32 stage's thin convs at half the rate
        return {(batch, side, c_in, c_out): PROBE / 2 if min(c_in, c_out) <= 16 else PROBE
                for batch, side, c_in, c_out in keys}

    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE, probe=probe)
    flat = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    first, last = SCHEDULE.phases()[0], SCHEDULE.phases()[-1]
    assert eta.flops[first.index] == pytest.approx(flat.flops[first.index])  # no thin conv at 4x4
    assert eta.flops[last.index] > 1.3 * flat.flops[last.index]
    for model in (eta, flat):  # both see what this machine measures (true_step: the probed FLOPs at RATE)
        model.costs["tick"], model.costs["checkpoint"] = [0.0], [0.0]
        for phase in SCHEDULE.phases()[:2]:  # 4x4 and the 8x8 fade measured; 16x16 and 32x32 not reached
            if phase.index:
                model.cost("switch", SWITCH)
            model.steps(phase, 625, 625 * true_step(eta, phase))
    truth = true_remaining(eta, 40_000)
    assert eta.remaining(40_000, 10_000, 20_000) == pytest.approx(truth, rel=1e-6)
    assert flat.remaining(40_000, 10_000, 20_000) < 0.85 * truth


def test_measured_phase_uses_its_own_step_time():
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    phase = SCHEDULE.phases()[0]
    eta.steps(phase, 100, 100 * 0.05)  # far from what FLOPs predict: the measurement wins
    assert eta.step_seconds(phase) == pytest.approx(0.05)


def test_trace_time_is_a_switch_cost_not_step_time():
    # Right after a start or resume the first call traces for seconds; that is counted once per phase
    # switch, so the ETA stays what the steps predict (a resumed run's ETA was 10x too long).
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    eta.costs["tick"], eta.costs["checkpoint"] = [0.0], [0.0]
    eta.cost("switch", 30.0)
    for kimg in (10, 90):  # 4x4, and 16x16 stable: the 32x32 fade and stable phases are ahead
        phase = SCHEDULE.phase_at(kimg * 1000)
        eta.steps(phase, 50, 50 * true_step(eta, phase))
    expected = true_remaining(eta, 90_000) + (30.0 - SWITCH) * 2  # two switches left, at the measured 30 s
    assert eta.remaining(90_000, 10_000, 20_000) == pytest.approx(expected, rel=1e-6)


def test_before_any_step_phases_run_at_the_derated_probe_rate():
    """A whole step runs its FLOPs at about half the probe's rate (the demo: 0.44-0.49); at the full probe
    rate the demo's first ETAs were 45 % short."""
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    for phase in SCHEDULE.phases():
        assert eta.step_seconds(phase) == pytest.approx(progress.PRIOR_OVERHEAD + eta.flops[phase.index] / RATE)


def test_the_final_export_is_counted():
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    assert eta.remaining(SCHEDULE.total_images, 10_000, 20_000) == progress.EXPORT_SECONDS > 0


def test_ticks_and_checkpoints_are_counted():
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    eta.costs["tick"], eta.costs["checkpoint"] = [0.0], [0.0]
    base = eta.remaining(160_000, 10_000, 20_000)
    eta.costs["tick"], eta.costs["checkpoint"] = [2.0], [5.0]
    assert eta.remaining(160_000, 10_000, 20_000) == pytest.approx(base + 2 * 2.0 + 1 * 5.0)


def test_plan_names_phases_devices_and_time():
    lines = progress.describe_plan(SCHEDULE, ["CPU:0", "CPU:1"], 754.0, images_seen=60_000)
    assert lines[0].startswith("plan: 7 phases, 180 kimg, 60.0 done")
    assert "4x4 stable 20, 8x8 fade 20 + stable 20" in lines[0] and "32x32 fade 20 + stable 60" in lines[0]
    assert lines[1] == "devices: CPU:0, CPU:1"
    assert lines[2].startswith("estimated time: 12m34s")


def test_a_phase_of_a_measured_resolution_scales_its_measured_sibling():
    # A resumed run has measured only the 32x32 fade: its stable phase is expected at the fade's measured
    # time per step times their prior ratio.
    eta = progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE)
    eta.steps(SCHEDULE.phases()[4], 100, 100 * 0.5)  # 16x16 stable, measured before the resume
    fade, stable = SCHEDULE.phases()[5], SCHEDULE.phases()[6]
    eta.steps(fade, 100, 100 * 0.25)
    assert eta.step_seconds(stable) == pytest.approx(0.25 * eta.prior(stable.index) / eta.prior(fade.index))


def test_a_shape_probe_reports_its_fastest_window(monkeypatch):
    """A slow spell of the machine during the probes (here: the first 24 timed convs, about four windows of
    the eight) does not count: each shape's fastest window does, and the shapes' windows alternate, so the
    spell cannot take all of one shape's. The clock is simulated: each conv advances it by 4 ms in the spell
    and 1 ms after it, so a busy test machine cannot change the result."""
    import types
    import tensorflow as tf
    from progan_tf.bench import peak
    clock = [0.0]

    def conv_time():
        clock.append(clock[-1] + (0.004 if len(clock) <= 4 + 24 else 0.001))  # calls 1-4: trace, calibration
        return np.float32(0)

    def conv(x, w, dy):  # traced once; conv_time runs on every iteration through numpy_function
        return tf.numpy_function(conv_time, [], tf.float32) + tf.reduce_sum(w) * 0

    simulated = types.SimpleNamespace(perf_counter=lambda: clock[-1])
    monkeypatch.setattr(progress, "time", simulated)
    monkeypatch.setattr(peak, "time", simulated)  # its loop_window sizes the windows
    monkeypatch.setattr(peak, "conv_fwd_bwd", conv)
    monkeypatch.setattr(peak, "conv_fwd_bwd_flops", lambda *shape: 1.0)
    monkeypatch.setattr(progress, "_SHAPE_RATES", {})
    keys = [(1, 8, 1, 1), (1, 8, 2, 2)]
    rates = progress.probe_shapes(keys, seconds=0.12)
    for key in keys:
        assert 1 / rates[key] == pytest.approx(0.001)  # the unslowed time per conv, not the spell's 0.004 s


def test_a_short_run_gets_a_short_probe():
    """Probing all shapes takes at most 1 % of the run's FLOP time, within 0.04-0.4 s per shape: the demo
    (minutes) probes each shape for 0.4 s, a test's run of a few hundred images for 0.04 s."""
    asked = []

    def probe(keys, seconds):
        asked.append(seconds)
        return dict.fromkeys(keys, PROBE)

    progress.Eta(NET, SCHEDULE, "wgan_gp", rate=PROBE, probe=probe)
    tiny = Schedule(max_resolution=32, fade_kimg=0.1, stable_kimg=0.1, total_kimg=0.7,
                    batch_sizes={4: 32, 8: 32, 16: 32, 32: 32})
    progress.Eta(NET, tiny, "wgan_gp", rate=PROBE, probe=probe)
    assert asked == [progress.PROBE_SECONDS, progress.PROBE_SECONDS_MIN]
