import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_contract import check_layer_contract
from progan_tf.layers import (Downsample2D, FadeIn, LeakyReLU, MinibatchStdDev, PixelNorm, Upsample2D,
                              WeightScaledConv2D, WeightScaledDense)
from progan_tf.ops import leaky_relu


@pytest.mark.parametrize("layer_cls, kwargs, in_shape, out_shape, n_weights, n_trainable, is_list", [
    (WeightScaledConv2D, {"filters": 8, "kernel_size": 3}, (6, 6, 5), (6, 6, 8), 2, None, False),
    (WeightScaledConv2D, {"filters": 8, "kernel_size": 3, "upsample": True}, (3, 5, 5), (6, 10, 8), 2, None, False),
    (WeightScaledConv2D, {"filters": 8, "kernel_size": 3, "downsample": True}, (6, 10, 5), (3, 5, 8), 2, None, False),
    (WeightScaledConv2D, {"filters": 3, "kernel_size": 1, "gain": 1.0, "use_bias": False},
     (6, 6, 5), (6, 6, 3), 1, None, False),
    (WeightScaledDense, {"units": 7}, (5,), (7,), 2, None, False),
    (WeightScaledDense, {"units": 32, "gain": math.sqrt(2) / 4, "target_shape": (2, 2, 8)},
     (5,), (2, 2, 8), 2, None, False),
    (PixelNorm, {"epsilon": 1e-8}, (3, 3, 6), (3, 3, 6), 0, None, False),
    (LeakyReLU, {"negative_slope": 0.2}, (3, 3, 6), (3, 3, 6), 0, None, False),
    (MinibatchStdDev, {"group_size": 2}, (3, 3, 6), (3, 3, 7), 0, None, False),
    (FadeIn, {"alpha": 0.25}, [(4, 4, 3), (4, 4, 3)], (4, 4, 3), 1, 0, True),
    (Upsample2D, {"factor": 2}, (3, 3, 2), (6, 6, 2), 0, None, False),
    (Downsample2D, {"factor": 2}, (4, 4, 2), (2, 2, 2), 0, None, False),
])
def test_layer_contract(layer_cls, kwargs, in_shape, out_shape, n_weights, n_trainable, is_list):
    check_layer_contract(layer_cls, kwargs, in_shape, out_shape, n_weights, n_trainable, is_list)


def test_weights_are_standard_normal_and_scaled_at_runtime():
    layer = WeightScaledConv2D(256, 3)
    layer.build((None, 8, 8, 128))
    kernel = layer.kernel.numpy()
    assert abs(kernel.mean()) < 0.01 and abs(kernel.std() - 1.0) < 0.01
    assert layer.scale == pytest.approx(math.sqrt(2) / math.sqrt(3 * 3 * 128))
    np.testing.assert_array_equal(layer.bias.numpy(), 0.0)


def test_output_std_matches_he_initialised_conv():
    x = tf.random.stateless_normal([16, 16, 16, 128], seed=[1, 2])
    ours = WeightScaledConv2D(128, 3)(x).numpy()
    he = keras.layers.Conv2D(128, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(
        0.0, math.sqrt(2.0 / (9 * 128))))(x).numpy()
    # Interior pixels: no zero padding, both should have std sqrt(2).
    assert ours[:, 1:-1, 1:-1].std() == pytest.approx(he[:, 1:-1, 1:-1].std(), rel=0.05)
    assert ours[:, 1:-1, 1:-1].std() == pytest.approx(math.sqrt(2.0), rel=0.05)


def test_dense_output_std_is_gain():
    x = tf.random.stateless_normal([4096, 256], seed=[3, 4])
    assert WeightScaledDense(256, gain=1.0)(x).numpy().std() == pytest.approx(1.0, rel=0.05)


def test_pixelnorm_gives_unit_mean_square_per_pixel():
    x = tf.random.stateless_normal([3, 5, 5, 16], seed=[5, 6]) * 7.0 + 2.0
    y = PixelNorm()(x).numpy()
    np.testing.assert_allclose(np.mean(y ** 2, axis=-1), 1.0, rtol=1e-5)
    # Direction is unchanged: y is a positive multiple of x per pixel.
    ratio = y / x.numpy()
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[..., :1], ratio.shape), rtol=1e-5)


def test_minibatch_stddev_appends_group_std():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 3, 5)).astype(np.float32)
    y = MinibatchStdDev(group_size=4)(x).numpy()
    assert y.shape == (8, 3, 3, 6)
    np.testing.assert_array_equal(y[..., :5], x)
    for g in range(2):  # groups of 4 consecutive samples
        members = x[4 * g:4 * g + 4]
        expected = np.sqrt(members.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[4 * g:4 * g + 4, :, :, 5], expected, rtol=1e-5)


def test_minibatch_stddev_small_batch_uses_whole_batch():
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 3)).astype(np.float32)
    y = MinibatchStdDev(group_size=4)(x).numpy()
    np.testing.assert_allclose(y[..., 3], np.sqrt(x.var(axis=0) + 1e-8).mean(), rtol=1e-5)


def test_minibatch_stddev_rejects_indivisible_batch():
    x = np.zeros((6, 2, 2, 3), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="divisible by the group size 4; change the batch size or mbstd_group_size"):
        MinibatchStdDev(group_size=4)(x)


def test_fade_in_lerps_with_assignable_alpha():
    old, new = np.full((1, 2, 2, 1), 2.0, np.float32), np.full((1, 2, 2, 1), 6.0, np.float32)
    fade = FadeIn()
    assert fade([old, new]).numpy().max() == 2.0
    fade.alpha.assign(0.25)
    assert fade([old, new]).numpy().max() == 3.0
    assert fade.get_config()["alpha"] == 0.25
    with pytest.raises(ValueError, match="alpha"):
        FadeIn(alpha=1.5)


def test_up_and_down_sampling():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    up = Upsample2D()(x).numpy()
    np.testing.assert_array_equal(up[0, :, :, 0], np.kron(x[0, :, :, 0], np.ones((2, 2))))
    down = Downsample2D()(x).numpy()
    np.testing.assert_array_equal(down[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(Downsample2D()(up).numpy(), x)


def test_upsample_gradient_sums_each_block():
    rng = np.random.default_rng(4)
    x = tf.constant(rng.standard_normal((2, 3, 3, 5)), tf.float32)
    dy = rng.standard_normal((2, 6, 6, 5)).astype(np.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = Upsample2D()(x)
    grad = tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()
    np.testing.assert_allclose(grad, dy.reshape(2, 3, 2, 3, 2, 5).sum((2, 4)), rtol=1e-6, atol=1e-6)


def _penalised(f, x, kernel):
    """f(x); the input and kernel gradients of sum(leaky(f(x))^2); the kernel gradient of the
    penalty sum(dx^2), the second-order gradient a gradient penalty takes."""
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = f(x)
            total = tf.reduce_sum(tf.square(leaky_relu(y)))
        dx, dw = inner.gradient(total, [x, kernel])
        penalty = tf.reduce_sum(tf.square(dx))
    return [y, dx, dw, outer.gradient(penalty, kernel)]


def _assert_same_function(fused, reference, x, reference_kernel):
    """`fused` and `reference` agree in value, gradients and penalty gradient; returns the value."""
    ours = _penalised(fused, x, fused.kernel)
    for a, b in zip(ours, _penalised(reference, x, reference_kernel)):
        scale = float(tf.reduce_max(tf.abs(b)))
        assert scale > 0
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5 * scale)
    return ours[0]


def _op_types(fn, x):
    return [op.type for op in tf.function(fn).get_concrete_function(x).graph.get_operations()]


def _kernel_gradient_op_types(layer, x):
    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            y = layer(x)
        return tape.gradient(y, layer.kernel)
    return _op_types(kernel_gradient, x)


def test_fused_upsample_conv_equals_upsample_then_conv():
    """Same values, input and weight gradients, and gradient-penalty (second-order) weight
    gradient as Upsample2D + conv3x3 with the same weights, borders included."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((3, 5, 7, 6)), tf.float32)  # odd, non-square: every border case
    fused, plain = WeightScaledConv2D(4, 3, upsample=True), WeightScaledConv2D(4, 3)
    fused.build(x.shape)
    plain.build((3, 10, 14, 6))
    plain.set_weights(fused.get_weights())
    fused.bias.assign(rng.standard_normal(4).astype(np.float32))
    plain.bias.assign(fused.bias)
    y = _assert_same_function(fused, lambda t: plain(Upsample2D()(t)), x, plain.kernel)
    assert y.shape == (3, 10, 14, 4)


def test_fused_upsample_conv_runs_the_fewer_flops():
    """The fused layer is one stride-2 transposed conv (no Tile): 16 MACs per input pixel.
    Its 4x4 kernel is one matmul of the 3x3 one, in both directions (no slices, whose
    gradients are slow StridedSliceGrad ops)."""
    layer = WeightScaledConv2D(4, 3, upsample=True)
    x = tf.zeros([2, 5, 5, 6])
    types = _op_types(layer, x)
    assert "Conv2DBackpropInput" in types and "Conv2D" not in types and "Tile" not in types
    types = _kernel_gradient_op_types(layer, x)
    assert types.count("MatMul") == 2 and "StridedSliceGrad" not in types


def test_fused_downsample_conv_equals_conv_then_average_pool():
    """avgpool2x2(conv3x3(x)) + bias, the official conv2d_downscale2d: same values, input and weight
    gradients and gradient-penalty (second-order) weight gradient, borders included; one stride-2
    Conv2D (no pooling op), its kernel one matmul of the 3x3 one in both directions."""
    rng = np.random.default_rng(6)
    x = tf.constant(rng.standard_normal((3, 8, 6, 5)), tf.float32)  # non-square
    fused, plain = WeightScaledConv2D(4, 3, downsample=True), WeightScaledConv2D(4, 3, use_bias=False)
    fused.build(x.shape)
    plain.build(x.shape)
    plain.kernel.assign(fused.kernel)
    fused.bias.assign(rng.standard_normal(4).astype(np.float32))
    y = _assert_same_function(fused, lambda t: Downsample2D()(plain(t)) + fused.bias, x, plain.kernel)
    assert y.shape == (3, 4, 3, 4) and fused.compute_output_shape((3, 8, 6, 5)) == (3, 4, 3, 4)
    types = _op_types(fused, x)
    assert types.count("Conv2D") == 1 and "AvgPool" not in types
    types = _kernel_gradient_op_types(fused, x)
    assert types.count("MatMul") == 2 and "StridedSliceGrad" not in types


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="negative_slope"):
        LeakyReLU(negative_slope=0.0)
    with pytest.raises(ValueError, match="filters"):
        WeightScaledConv2D(0)
    with pytest.raises(ValueError, match="upsample=True needs kernel_size 3"):
        WeightScaledConv2D(3, 1, upsample=True)
    with pytest.raises(ValueError, match="downsample=True needs kernel_size 3"):
        WeightScaledConv2D(3, 1, downsample=True)
    with pytest.raises(ValueError, match="both upsample and downsample"):
        WeightScaledConv2D(3, 3, upsample=True, downsample=True)
    with pytest.raises(ValueError, match="target_shape"):
        WeightScaledDense(10, target_shape=(2, 2, 2))
    with pytest.raises(ValueError, match="group_size"):
        MinibatchStdDev(group_size=0)
