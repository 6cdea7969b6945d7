"""The developer diagnostics in benchmarks/: the step profile, the oneDNN verbose-log summary, the
padding check and D's overfitting check."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from tiny_runs import trainer as tiny_trainer
from progan_tf import networks
from progan_tf.bench import flops
from progan_tf.networks import NetworkConfig
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import d_overfit  # noqa: E402
import onednn_log  # noqa: E402
import padding_check  # noqa: E402
import profile_step as profile  # noqa: E402


def test_profile_splits_step_time_by_op_type(tmp_path):
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
    assert profile.op_type("d/conv:Conv2D") == "Conv2D" and profile.op_type("ExecutorState::Process") is None
    assert sum(result["ops_running"].values()) == pytest.approx(1.0)
    assert result["ops_running"].get(1, 0) + result["ops_running"].get(2, 0) > 0.5


def test_concurrency_splits_the_span_by_ops_running():
    # Over 0..10: A runs 0..6, B 2..4, C 8..10; so 2 ops for 2, 1 op for 6, none for 2.
    events = [("A", 0, 6), ("B", 2, 4), ("C", 8, 10)]
    assert profile.concurrency(events) == pytest.approx({0: 0.2, 1: 0.6, 2: 0.2})
    assert profile.op_times(events) == {"A": (6e-12, 1), "B": (2e-12, 1), "C": (2e-12, 1)}


ONEDNN_LINES = [
    "onednn_verbose,v1,info,cpu,runtime:threadpool,nthr:2\n",
    "onednn_verbose,v1,primitive,create:cache_hit,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0,,alg:convolution_direct,mb32_ic128oc128_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,0.003\n",
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0,,alg:convolution_direct,"
    "mb32_ic128oc128_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,2.0\n",
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core,forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb64a::f0,,alg:convolution_direct,"
    "mb32_ic128oc128_ih8oh8kh3sh1dh0ph1_iw8ow8kw3sw1dw0pw1,3.0\n",
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,"
    "src:f32::blocked:cdba::f0 dst:f32::blocked:Acdb64a::f0,,,128x128x3x3,0.5\n",
    "onednn_verbose,v1,primitive,exec,cpu,inner_product,x64:gemm:jit,forward_training,"
    "src:f32::blocked:ab::f0,,,mb32ic2048oc128,0.25\n",
    "onednn_verbose,v1,primitive,exec,cpu,gemm_api,,undef,src_f32::blocked:ab:f0,,,128x32:32x2048,0.25\n",
]


def test_onednn_log_rates_count_executed_flops():
    records = onednn_log.parse(ONEDNN_LINES)
    assert [r["kind"] for r in records] == ["convolution", "convolution", "reorder", "inner_product", "gemm_api"]
    rows = {row["kind"]: row for row in onednn_log.summarize(records)}
    conv = rows["convolution"]
    # 8x8, 3x3, pad 1: 22 of 24 taps per row land on the image.
    assert onednn_log.problem_flops("convolution", conv["problem"]) == 2 * 32 * 128 * 128 * 22 * 22
    assert conv["calls"] == 2 and conv["ms"] == pytest.approx(5.0) and conv["share"] == pytest.approx(5.0 / 6.0)
    assert conv["gflops"] == pytest.approx(2 * 2 * 32 * 128 * 128 * 22 * 22 / 5e-3 / 1e9)
    assert rows["reorder"]["gflops"] is None and rows["reorder"]["layouts"].startswith("src:f32::blocked:cdba")
    assert rows["inner_product"]["gflops"] == pytest.approx(2 * 32 * 2048 * 128 / 0.25e-3 / 1e9)
    assert rows["gemm_api"]["gflops"] == pytest.approx(2 * 128 * 32 * 2048 / 0.25e-3 / 1e9)
    # Strided and grouped convolutions count as their taps say.
    assert onednn_log.problem_flops("convolution", "g2mb1_ic8oc4_ih9oh4kh4sh2dh0ph1_iw9ow4kw4sw2dw0pw1") == \
        2 * 1 * 4 * 4 * flops.taps_on_image(9, 4, 4, 2, 1) ** 2
    assert onednn_log.problem_flops("convolution", "mb1_ic8oc4_ih9oh5kh3sh1dh1ph1_iw9ow5kw3sw1dw1pw1") is None


def test_onednn_log_reads_this_tensorflow(tmp_path):
    """The log format of the oneDNN inside the installed TensorFlow, and the CLI's refusal of other files."""
    import subprocess
    import sys
    code = ("import tensorflow as tf\n"
            "x, w = tf.ones([2, 8, 8, 16]), tf.Variable(tf.ones([3, 3, 16, 32]))\n"
            "tf.function(lambda: tf.nn.conv2d(x, w, 1, 'SAME'))().numpy()\n")
    env = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
    log = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120).stdout
    convs = [r for r in onednn_log.parse(log.splitlines()) if r["kind"] == "convolution"]
    if not convs:
        pytest.skip("this TensorFlow runs its convolutions without oneDNN")
    assert onednn_log.problem_flops("convolution", convs[0]["problem"]) == 2 * 2 * 16 * 32 * 22 * 22
    (tmp_path / "log").write_text(log)
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "onednn_log.py")
    out = subprocess.run([sys.executable, script, str(tmp_path / "log")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "convolution forward_training" in out.stdout, out.stderr[-2000:]
    (tmp_path / "empty").write_text("no onednn here\n")
    out = subprocess.run([sys.executable, script, str(tmp_path / "empty")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "ONEDNN_VERBOSE=1" in out.stderr.strip().splitlines()[-1]


def test_padding_check_times_all_three_ops_both_ways():
    rates = padding_check.padding_check(2, 4, 4, 4, target_seconds=0.005, repeats=1, budget_seconds=0)
    assert set(rates) == {"SAME", "VALID"}
    for padding in rates.values():
        assert set(padding) == {"fwd", "bwd_input", "bwd_filter"}
        assert all(np.isfinite(r) and r > 0 for r in padding.values())


def test_d_overfit_scores_with_the_checkpoints_d_and_gs_at_their_alpha(tmp_path):
    run = tiny_trainer(tmp_path)
    state = run.train(stop_at_images=96)  # mid-fade into 8x8: alpha 0.5, the fading networks
    assert state["fading"] and 0 < state["alpha"] < 1
    d, gs, loaded = d_overfit.newest_models(str(tmp_path))
    assert loaded["images_seen"] == 96
    # The trained models hold the alpha of their last step (0.375); the checkpoint's state names the position's.
    for model in (run.models.Gs, run.models.D):
        networks.set_alpha(model, state["alpha"])
    latents = np.random.default_rng(1).standard_normal((8, gs.input_shape[-1])).astype(np.float32)
    fakes = run.models.Gs(latents, training=False).numpy()
    np.testing.assert_allclose(gs(latents, training=False).numpy(), fakes, atol=1e-6)
    np.testing.assert_allclose(d(fakes, training=False).numpy(), run.models.D(fakes, training=False).numpy(),
                               atol=1e-5)
