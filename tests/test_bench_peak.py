"""This machine's peak: the convolution step counts only live work, rates follow the FLOP count."""
import pytest
import tensorflow as tf

from graph_flops import graph_flops
from progan_tf.bench import peak
from progan_tf.errors import ConfigError


def test_conv_peak_step_runs_forward_and_both_gradients():
    """All three convolutions are live, so "fwd+bwd" counts only work that is done
    (a step whose forward output nothing used was pruned by Grappler and overstated
    the peak by 1.5x)."""
    x, w, dy = tf.zeros([2, 8, 8, 4]), tf.zeros([3, 3, 4, 5]), tf.zeros([2, 8, 8, 5])
    traced = graph_flops(tf.function(peak.conv_fwd_bwd).get_concrete_function(x, w, dy), nominal=True)
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


class _Load:
    """OtherLoad as a machine with `cores` of other load in every window."""
    cores = 0.0

    def __enter__(self):
        self.seconds = 0.01
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("cores, quiet", [(0.0, True), (0.5, False)])
def test_windows_without_time_to_wait_are_judged_by_their_own_load(monkeypatch, cores, quiet):
    # --bench_wait=0 leaves no time to wait for quiet; windows that were quiet still count as quiet.
    monkeypatch.setattr(peak, "OtherLoad", type("Load", (_Load,), {"cores": cores}))
    slept = []
    monkeypatch.setattr(peak.time, "sleep", slept.append)
    result = peak.timed_windows(lambda: None, repeats=3, budget_seconds=0)
    assert result["quiet"] is quiet and len(result["seconds"]) == 3
    assert result["rejected"] == 0
    assert slept == []  # no time to wait: no probe of the load either (0.5 s at the start of every run)


def test_a_peak_file_is_read_back_and_an_old_one_is_refused_naming_the_options(tmp_path):
    """A peak JSON, or a progan-bench JSON carrying one, reads back; one from before executed and nominal FLOPs were
    told apart is a ConfigError that progan-bench writes as its --peak_json and --peak flags."""
    good = {"conv_peak_gflops": 300.0, "conv_peak_gflops_nominal": 320.0}
    peak.write_json(str(tmp_path / "peak.json"), good)
    peak.write_json(str(tmp_path / "bench.json"), {"rows": [], "peak": good})
    assert peak.read_peak(str(tmp_path / "peak.json")) == good
    assert peak.read_peak(str(tmp_path / "bench.json")) == good
    peak.write_json(str(tmp_path / "old.json"), {"conv_peak_gflops": 300.0})
    with pytest.raises(ConfigError) as error:
        peak.read_peak(str(tmp_path / "old.json"))
    assert error.value.message(lambda field: f"--{field}") == (
        f"--peak_json={tmp_path / 'old.json'} holds no peak measured with executed and nominal FLOPs told apart; "
        f"measure it again with --peak")
