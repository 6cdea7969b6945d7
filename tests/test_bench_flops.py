import numpy as np
import pytest
import tensorflow as tf

from graph_flops import graph_flops
from progan_tf.bench import flops
from progan_tf.networks import NetworkConfig, build_discriminator, build_generator
from progan_tf.schedule import Schedule
from progan_tf.training.config import TrainConfig
from progan_tf.training.trainer import Trainer

# fused_upsample=8: the 8x8 block's upsampling conv is a 4x4 transposed conv.
NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)


@pytest.mark.parametrize("fused", [0, 8])
def test_forward_flops_by_hand(fused):
    net = NetworkConfig(**{**NET.to_dict(), "fused_upsample": fused})
    g = build_generator(net, 8)
    # dense 16 -> 4*4*16, conv3x3 16->16 at 4x4, two conv3x3 16->16 at 8x8, toRGB 16->3 at 8x8;
    # fused, the first 8x8 conv is a 4x4 kernel over the 4x4 input's 16 pixels.
    conv0 = 2 * 16 * 16 * 16 * 16 if fused else 2 * 64 * 9 * 16 * 16
    per_image = 2 * 16 * 256 + 2 * 16 * 9 * 16 * 16 + conv0 + 2 * 64 * 9 * 16 * 16 + 2 * 64 * 16 * 3
    nominal, _ = flops.forward_flops(g, batch=2, nominal=True)
    assert nominal == 2 * per_image
    # Executed: along a row, a 3x3 'SAME' conv has 10 of its 12 taps on a 4x4 image and 22 of 24
    # on an 8x8 one; the fused 4x4 stride-2 kernel has 14 of 16.
    conv0 = 2 * 14 * 14 * 16 * 16 if fused else 2 * 22 * 22 * 16 * 16
    per_image = 2 * 16 * 256 + 2 * 10 * 10 * 16 * 16 + conv0 + 2 * 22 * 22 * 16 * 16 + 2 * 64 * 16 * 3
    f_g, other_g = flops.forward_flops(g, batch=2)
    assert f_g == 2 * per_image
    # Element-wise per image: the latents' PixelNorm 4 * 16; after the dense (256 values), the 4x4 conv (256) and the
    # two 8x8 convs (1,024 each) a bias, a LeakyReLU and a PixelNorm, 1 + 2 + 4 per value; toRGB's bias 8 * 8 * 3.
    assert other_g == 2 * (4 * 16 + 7 * (256 + 256 + 1024 + 1024) + 192)
    stage = flops.stage_flops(net, 8, batch=2)
    assert stage["iteration"] == 4 * stage["F_G"] + 14 * stage["F_D"]
    assert stage["per_image"] == stage["iteration"] / 2
    assert stage["iteration_nominal"] == 4 * stage["F_G_nominal"] + 14 * stage["F_D_nominal"]
    assert stage["F_G_nominal"] == nominal and stage["iteration"] < stage["iteration_nominal"]


@pytest.mark.parametrize("fused", [0, 8])
def test_discriminator_block_conv_flops_by_hand(fused):
    """The 8x8 block's second conv: a 3x3 conv at 8x8, or fused, a 4x4 stride-2 conv onto 4x4."""
    net = NetworkConfig(**{**NET.to_dict(), "fused_downsample": fused})
    rows = {name: flops for name, kind, flops in flops.layer_flops(build_discriminator(net, 8)) if kind == "conv"}
    nominal = {name: f for name, kind, f in flops.layer_flops(build_discriminator(net, 8), nominal=True)}
    assert nominal["d_block_8_conv1"] == (2 * 16 * 16 * 16 * 16 if fused else 2 * 64 * 9 * 16 * 16)
    # Executed: the fused kernel has 14 of its 16 taps per row on the 8x8 input; the 3x3 one 22 of 24.
    assert rows["d_block_8_conv1"] == (2 * 14 * 14 * 16 * 16 if fused else 2 * 22 * 22 * 16 * 16)


@pytest.mark.parametrize("in_size,kernel,stride,padding", [
    (4, 3, 1, "SAME"), (8, 3, 1, "SAME"), (7, 3, 1, "SAME"), (5, 1, 1, "SAME"), (8, 4, 2, "SAME"),
    (16, 4, 2, "SAME"), (9, 4, 2, "SAME"), (8, 3, 1, "VALID"), (9, 4, 2, "VALID"), (8, 3, 1, 1), (9, 4, 2, 1),
    (4, 3, 1, 2)])
def test_taps_on_image_counts_what_a_convolution_of_ones_sums(in_size, kernel, stride, padding):
    """A conv of an all-ones image with an all-ones kernel sums the taps that land on the image."""
    tf_padding = [[0, 0], [padding, padding], [padding, padding], [0, 0]] if isinstance(padding, int) else padding
    ones = tf.nn.conv2d(tf.ones([1, in_size, in_size, 1]), tf.ones([kernel, kernel, 1, 1]), stride, tf_padding)
    out_size = int(ones.shape[1])
    taps = flops.taps_on_image(in_size, out_size, kernel, stride, padding)
    assert taps * taps == int(tf.reduce_sum(ones))
    assert taps <= out_size * kernel


def test_paper_networks_cost():
    s = flops.stage_flops(NetworkConfig(), 4, batch=1)
    # 4x4: dense 512 -> 8192 and a 3x3 512 -> 512 conv on 16 pixels (100 of its 144 taps on the image).
    assert s["F_G"] == 2 * 512 * 8192 + 2 * 100 * 512 * 512 + 2 * 16 * 512 * 3
    assert s["F_G_nominal"] == 2 * 512 * 8192 + 2 * 16 * 9 * 512 * 512 + 2 * 16 * 512 * 3
    with pytest.raises(ValueError, match="unknown loss"):
        flops.stage_flops(NET, 8, loss="hinge")


@pytest.mark.parametrize("fading,loss,key", [(False, "wgan_gp", "wgan_gp"), (True, "wgan_gp", "wgan_gp"),
                                             (False, "lsgan", "lsgan"), (False, "logistic", "logistic")])
def test_iteration_count_matches_the_traced_step(tmp_path, fading, loss, key):
    """The analytical 4 F_G + 14 F_D (and the other losses' multiples) equals the traced graph's work."""
    schedule = Schedule(max_resolution=8, batch_sizes={4: 8, 8: 8}, total_kimg=None)
    trainer = Trainer(NET, schedule, TrainConfig(run_dir=str(tmp_path), loss=loss), None,
                      tf.distribute.OneDeviceStrategy("/cpu:0"), print_fn=lambda *_: None)
    phase = schedule.phases()[1 if fading else 2]  # 8x8 fade / 8x8 stable
    step = trainer.make_train_step(trainer.build_phase(phase))
    function = step.get_concrete_function(tf.zeros([8, 8, 8, 3]), tf.constant(0, tf.int64), tf.constant(0.5),
                                          tf.constant(0.999))
    stage = flops.stage_flops(NET, 8, fading, batch=8, loss=key)
    for nominal, expected in ((False, stage["iteration"]), (True, stage["iteration_nominal"])):
        traced = graph_flops(function, nominal=nominal)
        # The analysis ignores that the first layers need no input gradient in some passes.
        # (The same 1.2 MFLOP here with and without the fused D: 2.0 % of the fused step.)
        assert sum(traced.values()) == pytest.approx(expected, rel=0.025)
        assert sum(traced.values()) <= expected
        assert np.all([v > 0 for v in traced.values()])


def test_conv_work_splits_the_iteration_by_conv_shape():
    net = NetworkConfig(resolution=16, latent_size=16, fmap_base=64, fmap_max=32)
    work = flops.conv_work(net, 16, fading=True, batch=4)
    counts = flops.stage_flops(net, 16, True, 4)
    elementwise = work.pop("elementwise")
    assert elementwise == pytest.approx(4 * counts["other_G"] + 14 * counts["other_D"], rel=1e-12)
    assert sum(work.values()) == pytest.approx(counts["iteration"], rel=1e-12)
    # G's 16x16 block: the fused upsample 16 -> 8 maps and the 3x3 8 -> 8, both with a 16x16 output.
    assert work[(16, 16, 8)] > 0 and work[(16, 8, 8)] > 0
    assert work[(4, 33, 32)] > 0  # D's 4x4 conv after the minibatch-stddev channel
    assert None in work  # toRGB / fromRGB (1x1) and the dense layers
    assert {side for side, _, _ in filter(None, work)} == {4, 8, 16}
