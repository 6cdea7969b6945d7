import numpy as np
import pytest
import tensorflow as tf

from progan_tf import flops
from progan_tf.networks import NetworkConfig, build_generator
from progan_tf.schedule import Schedule
from progan_tf.training.trainer import TrainConfig, Trainer

# fused_upsample=8: the 8x8 block's upsampling conv is a 4x4 transposed conv.
NET = NetworkConfig(resolution=8, latent_size=16, fmap_base=64, fmap_max=16, fused_upsample=8)


@pytest.mark.parametrize("fused", [0, 8])
def test_forward_flops_by_hand(fused):
    net = NetworkConfig(**{**NET.to_dict(), "fused_upsample": fused})
    f_g, other_g = flops.forward_flops(build_generator(net, 8), batch=2)
    # dense 16 -> 4*4*16, conv3x3 16->16 at 4x4, two conv3x3 16->16 at 8x8, toRGB 16->3 at 8x8;
    # fused, the first 8x8 conv is a 4x4 kernel over the 4x4 input's 16 pixels.
    conv0 = 2 * 16 * 16 * 16 * 16 if fused else 2 * 64 * 9 * 16 * 16
    per_image = 2 * 16 * 256 + 2 * 16 * 9 * 16 * 16 + conv0 + 2 * 64 * 9 * 16 * 16 + 2 * 64 * 16 * 3
    assert f_g == 2 * per_image
    assert 0 < other_g < 0.1 * f_g
    stage = flops.stage_flops(net, 8, batch=2)
    assert stage["iteration"] == 4 * stage["F_G"] + 14 * stage["F_D"]
    assert stage["per_image"] == stage["iteration"] / 2


def test_paper_networks_cost():
    s = flops.stage_flops(NetworkConfig(), 4, batch=1)
    # 4x4: dense 512 -> 8192 and a 3x3 512 -> 512 conv on 16 pixels dominate.
    assert s["F_G"] == pytest.approx(2 * 512 * 8192 + 2 * 16 * 9 * 512 * 512 + 2 * 16 * 512 * 3)
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
    traced = flops.graph_flops(step.get_concrete_function(
        tf.zeros([8, 8, 8, 3]), tf.constant(0, tf.int64), tf.constant(0.5)))
    expected = flops.stage_flops(NET, 8, fading, batch=8, loss=key)["iteration"]
    # The analysis ignores that the first layers need no input gradient in some passes.
    assert sum(traced.values()) == pytest.approx(expected, rel=0.02)
    assert sum(traced.values()) <= expected
    assert np.all([v > 0 for v in traced.values()])
