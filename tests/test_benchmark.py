"""The speed harness measures what it says: live FLOPs, rows that match the analytical count."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import flops
from progan_tf.benchmark import peak, throughput
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.trainer import TrainConfig
from test_cli_train import TINY, _train


def test_conv_peak_step_runs_forward_and_both_gradients():
    """All three convolutions are live, so "fwd+bwd" counts only work that is done
    (a step whose forward output nothing used was pruned by Grappler and overstated
    the peak by 1.5x)."""
    x, w, dy = tf.zeros([2, 8, 8, 4]), tf.zeros([3, 3, 4, 5]), tf.zeros([2, 8, 8, 5])
    traced = flops.graph_flops(tf.function(peak.conv_fwd_bwd).get_concrete_function(x, w, dy), nominal=True)
    macs = 2 * 8 * 8 * 9 * 4 * 5
    assert traced == {"Conv2D": 2 * macs, "Conv2DBackpropInput": 2 * macs, "Conv2DBackpropFilter": 2 * macs,
                      "MatMul": 0}


def test_conv_peak_rate_counts_three_convolutions_per_iteration():
    result = peak.conv_peak(2, 8, 4, 4, target_seconds=0.01, repeats=2, budget_seconds=0)
    # Executed: 22 of the 24 taps along each 8-pixel row land on the image; nominal: all 9 per pixel.
    flops_per_window = 3 * 2 * (2 * 22 * 22 * 4 * 4) * result["iterations"]
    nominal_per_window = 3 * 2 * (2 * 8 * 8 * 9 * 4 * 4) * result["iterations"]
    assert len(result["seconds"]) == 2
    assert result["gflops"] == pytest.approx(flops_per_window / result["median"] / 1e9)
    assert result["gflops_best"] == pytest.approx(flops_per_window / min(result["seconds"]) / 1e9)
    assert result["gflops_nominal"] == pytest.approx(nominal_per_window / result["median"] / 1e9)


def test_padding_check_times_all_three_ops_both_ways():
    rates = peak.padding_check(2, 4, 4, 4, target_seconds=0.005, repeats=1, budget_seconds=0)
    assert set(rates) == {"SAME", "VALID"}
    for padding in rates.values():
        assert set(padding) == {"fwd", "bwd_input", "bwd_filter"}
        assert all(np.isfinite(r) and r > 0 for r in padding.values())


def test_throughput_rows_follow_the_flop_count(tmp_path):
    network = NetworkConfig(resolution=8, latent_size=8, fmap_base=32, fmap_max=16)
    schedule = Schedule(max_resolution=8, batch_sizes={4: 8, 8: 8}, total_kimg=None)
    config = TrainConfig(run_dir=str(tmp_path), steps_per_call=2)
    fake_peak = {"conv_peak_gflops": 100.0, "conv_peak_gflops_nominal": 120.0}
    lines = []
    result = throughput.run_benchmark(network, schedule, config, steps=2, warmup=1, repeats=2, budget_seconds=0,
                                      peak=fake_peak, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
                                      print_fn=lines.append)
    assert [r["resolution"] for r in result["rows"]] == [4, 8]
    assert lines[0] == throughput.HEADER and [line.split()[0] for line in lines[1:3]] == ["4", "8"]
    for row in result["rows"]:
        cost = flops.stage_flops(network, row["resolution"], False, 8)
        assert row["flops_per_step"] == cost["iteration"]
        assert row["images_per_second"] == pytest.approx(8 / (row["ms_per_step"] / 1e3))
        assert row["gflops"] == pytest.approx(cost["iteration"] / (row["ms_per_step"] / 1e3) / 1e9)
        assert row["fraction_of_peak"] == pytest.approx(row["gflops"] / 100.0)
        assert row["gflops_nominal"] == pytest.approx(cost["iteration_nominal"] / (row["ms_per_step"] / 1e3) / 1e9)
        assert row["fraction_of_peak_nominal"] == pytest.approx(row["gflops_nominal"] / 120.0)
        assert row["gflops"] < row["gflops_nominal"]  # 3x3 convs at 4x4 and 8x8 skip padding taps
        assert row["steps_per_window"] % 2 == 0 and np.isfinite(row["median"])


def test_progan_train_benchmark_writes_json_and_no_run(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = _train(TINY + [f"--run_dir={tmp_path / 'run'}", "--benchmark", "--benchmark_resolutions=8",
                          "--benchmark_steps=2", "--benchmark_repeats=1", "--benchmark_wait=0",
                          f"--benchmark_json={out_json}"], tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "img/s" in out and "GFLOP/s" in out
    result = json.loads(out_json.read_text())
    assert [r["resolution"] for r in result["rows"]] == [8] and result["rows"][0]["images_per_second"] > 0
    assert not os.path.exists(tmp_path / "run"), "--benchmark must not create the run directory"


def test_profile_splits_step_time_by_op_type(tmp_path):
    from progan_tf.benchmark import profile
    from progan_tf.training.trainer import Trainer
    network = NetworkConfig(resolution=8, latent_size=8, fmap_base=32, fmap_max=16)
    schedule = Schedule(max_resolution=8, batch_sizes={4: 8, 8: 8}, total_kimg=None)
    trainer = Trainer(network, schedule, TrainConfig(run_dir=str(tmp_path / "run"), steps_per_call=2), None,
                      tf.distribute.OneDeviceStrategy("/cpu:0"), print_fn=lambda *_: None)
    phase = [p for p in schedule.phases() if p.resolution == 8 and not p.fading][0]
    result = profile.profile_phase(trainer, phase, str(tmp_path / "trace"))
    assert result["steps"] == 2 and result["wall_ms_per_step"] > 0
    ops = {row["op"]: row for row in result["rows"]}
    convs = [row for row in result["rows"] if row["kind"] == "conv"]
    # Each step runs D forward/backward on reals, fakes and interpolates and G twice: dozens of convs.
    assert sum(row["ops_per_step"] for row in convs) >= 20
    assert sum(result["share_by_kind"].values()) == pytest.approx(1.0)
    assert result["share_by_kind"]["conv"] > 0.1
    assert "ResourceApplyAdam" in ops  # the optimizer update is inside the traced steps
    assert profile._op_type("d/conv:Conv2D") == "Conv2D" and profile._op_type("ExecutorState::Process") is None
