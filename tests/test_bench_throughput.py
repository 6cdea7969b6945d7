"""Step throughput per resolution: rows that follow the analytical FLOP count."""
import numpy as np
import pytest
import tensorflow as tf

from progan_tf.bench import flops, throughput
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer


def test_throughput_rows_follow_the_flop_count(tmp_path):
    network = NetworkConfig(resolution=8, latent_size=8, fmap_base=32, fmap_max=16)
    schedule = Schedule(max_resolution=8, batch_sizes={4: 8, 8: 8}, total_kimg=None)
    config = TrainConfig(run_dir=str(tmp_path), steps_per_call=2)
    fake_peak = {"conv_peak_gflops": 100.0, "conv_peak_gflops_nominal": 120.0}
    lines = []
    trainer = Trainer(network, schedule, config, None, tf.distribute.OneDeviceStrategy("/cpu:0"),
                      print_fn=lambda *_: None)
    result = throughput.run_benchmark(trainer, steps=2, warmup=1, repeats=2, budget_seconds=0, peak=fake_peak,
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
