"""The functions the layers are made of (progan_tf/ops.py): the fade of the reals, LeakyReLU's gradient."""
import numpy as np
import tensorflow as tf

from progan_tf.layers import LeakyReLU
from progan_tf.ops import fade_reals, leaky_relu


def test_fade_reals_blends_blurred_and_sharp():
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype(np.float32)
    blurred = np.repeat(np.repeat(x.reshape(2, 4, 2, 4, 2, 3).mean((2, 4)), 2, 1), 2, 2)
    np.testing.assert_allclose(fade_reals(x, 0.0).numpy(), blurred, atol=1e-6)
    np.testing.assert_allclose(fade_reals(x, 1.0).numpy(), x, atol=1e-6)
    np.testing.assert_allclose(fade_reals(x, 0.3).numpy(), blurred + 0.3 * (x - blurred), atol=1e-6)


def _penalised(act, x, w):
    """Value, input gradient and the gradient penalty's weight gradient (a double backward)."""
    with tf.GradientTape() as outer:
        outer.watch(w)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(tf.square(act(tf.nn.conv2d(act(x), w, 1, "SAME"))))
        dx = inner.gradient(y, x)
        penalty = tf.reduce_sum(tf.square(dx))
    return y, dx, outer.gradient(penalty, w)


def test_leaky_relu_gradients_equal_tf_bit_for_bit():
    """Reading the output instead of the input changes no bit, first order or second (zeros included)."""
    rng = np.random.default_rng(3)
    x = tf.constant(np.concatenate([rng.standard_normal((3, 6, 6, 4)), np.zeros((1, 6, 6, 4))]), tf.float32)
    w = tf.constant(rng.standard_normal((3, 3, 4, 4)), tf.float32)
    ours = _penalised(lambda t: leaky_relu(t, 0.2), x, w)
    reference = _penalised(lambda t: tf.nn.leaky_relu(t, 0.2), x, w)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(tf.reduce_max(tf.abs(ours[2]))) > 0
    np.testing.assert_array_equal(LeakyReLU(0.2)(x).numpy(), tf.nn.leaky_relu(x, 0.2).numpy())


def test_leaky_relu_second_order_never_reads_the_pre_activation():
    """No LeakyReluGrad in a gradient penalty's graph reads the conv output: so Grappler can
    fuse conv + bias + LeakyReLU on the penalty's pass too."""
    x, w = tf.TensorSpec([2, 6, 6, 4]), tf.TensorSpec([3, 3, 4, 4])
    graph = tf.function(lambda x, w: _penalised(lambda t: leaky_relu(t, 0.2), x, w)).get_concrete_function(x, w).graph
    grads = [op for op in graph.get_operations() if op.type == "LeakyReluGrad"]
    assert len(grads) >= 2
    for op in grads:
        source = op.inputs[1].op
        while source.type in ("Identity", "StopGradient"):
            source = source.inputs[0].op
        assert source.type == "LeakyRelu", (op.name, source.type)
