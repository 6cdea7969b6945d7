import numpy as np
import pytest
import tensorflow as tf

from progan_tf import losses


def linear_critic(w, b=0.0):
    """D(x) = <w, x> + b per example: its input gradient is w everywhere."""
    w = tf.constant(w, tf.float32)
    return lambda x, training=False: tf.reduce_sum(x * w, axis=[1, 2, 3])[:, None] + b


def _images(seed, shape=(4, 2, 2, 3)):
    return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_gradient_penalty_is_zero_for_unit_norm_gradient():
    w = np.random.default_rng(0).standard_normal((2, 2, 3))
    critic = linear_critic(w / np.linalg.norm(w))
    penalty = losses.gradient_penalty(critic, _images(1), _images(2), tf.fill([4, 1, 1, 1], 0.3))
    np.testing.assert_allclose(penalty.numpy(), 0.0, atol=1e-10)


def test_wgan_gp_matches_hand_computation():
    w = np.zeros((2, 2, 3))
    w[0, 0, 0], w[1, 1, 2] = 3.0, 4.0  # ||grad|| = 5 everywhere
    critic = linear_critic(w, b=0.5)
    reals, fakes = _images(3), _images(4)
    real_scores = (reals.numpy() * w).sum(axis=(1, 2, 3)) + 0.5
    fake_scores = (fakes.numpy() * w).sum(axis=(1, 2, 3)) + 0.5
    expected = fake_scores - real_scores + 10.0 * (5.0 - 1.0) ** 2 + 0.001 * real_scores ** 2
    got = losses.wgan_gp_d_loss(critic, reals, fakes, tf.fill([4, 1, 1, 1], 0.7))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(losses.wgan_g_loss(tf.constant(fake_scores)).numpy(), -fake_scores)


def test_gradient_penalty_is_taken_at_the_interpolates():
    # D(x) = 0.5 * sum(x^2): grad = x, so the norm at the interpolate is known exactly.
    critic = lambda x, training=False: 0.5 * tf.reduce_sum(tf.square(x), axis=[1, 2, 3])[:, None]
    reals, fakes = _images(5), _images(6)
    mixing = np.array([0.0, 0.25, 0.5, 1.0], np.float32).reshape(4, 1, 1, 1)
    mixed = reals.numpy() + (fakes.numpy() - reals.numpy()) * mixing
    expected = (np.sqrt((mixed ** 2).sum(axis=(1, 2, 3))) - 1.0) ** 2
    np.testing.assert_allclose(losses.gradient_penalty(critic, reals, fakes, mixing).numpy(), expected, rtol=1e-5)


def test_loss_scaled_inner_gradient_gives_the_same_penalty():
    critic = linear_critic(np.full((2, 2, 3), 0.5))
    plain = losses.gradient_penalty(critic, _images(7), _images(8), tf.fill([4, 1, 1, 1], 0.5))
    scaled = losses.gradient_penalty(critic, _images(7), _images(8), tf.fill([4, 1, 1, 1], 0.5),
                                     loss_scale=tf.constant(1024.0))
    np.testing.assert_allclose(scaled.numpy(), plain.numpy(), rtol=1e-6)


def test_lsgan_and_logistic_match_hand_computation():
    w = np.full((2, 2, 3), 0.25)
    critic = linear_critic(w)
    reals, fakes = _images(9), _images(10)
    r = (reals.numpy() * w).sum(axis=(1, 2, 3))
    f = (fakes.numpy() * w).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(losses.lsgan_d_loss(critic, reals, fakes).numpy(),
                               0.5 * ((r - 1) ** 2 + f ** 2), rtol=1e-5)
    np.testing.assert_allclose(losses.lsgan_g_loss(tf.constant(f)).numpy(), 0.5 * (f - 1) ** 2, rtol=1e-5)
    softplus = lambda v: np.log1p(np.exp(v))
    r1 = (w ** 2).sum()  # ||grad D(real)||^2
    np.testing.assert_allclose(losses.logistic_d_loss(critic, reals, fakes, r1_gamma=10.0).numpy(),
                               softplus(f) + softplus(-r) + 5.0 * r1, rtol=1e-5)
    np.testing.assert_allclose(losses.logistic_g_loss(tf.constant(f)).numpy(), softplus(-f), rtol=1e-5)


def test_dispatch_and_unknown_loss():
    critic = linear_critic(np.ones((2, 2, 3)))
    for name in losses.LOSSES:
        out = losses.d_loss(name, critic, _images(11), _images(12), tf.fill([4, 1, 1, 1], 0.5))
        assert out.shape == (4,) and np.all(np.isfinite(out.numpy()))
        assert losses.g_loss(name, tf.ones([4])).shape == (4,)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.d_loss("hinge", critic, _images(11), _images(12), None)
    with pytest.raises(ValueError, match="unknown loss"):
        losses.g_loss("hinge", tf.ones([4]))


def _critic_and_batches(batch, seed=0):
    from progan_tf.networks import NetworkConfig, build_discriminator
    net = NetworkConfig(resolution=8, latent_size=8, fmap_base=32, fmap_max=16, mbstd_group_size=4)
    tf.keras.utils.set_random_seed(seed)
    return net, build_discriminator(net, 8), _images(seed + 1, (batch, 8, 8, 3)), _images(seed + 2, (batch, 8, 8, 3))


def _loss_and_grads(name, critic, reals, fakes, joint):
    mixing = tf.fill([reals.shape[0], 1, 1, 1], 0.3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(losses.d_loss(name, critic, reals, fakes, mixing, r1_gamma=0.0, joint=joint))
    return loss, tape.gradient(loss, critic.trainable_variables)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_joint_pass_over_reals_and_fakes_is_the_same_loss(name):
    """One D pass over [reals; fakes] gives the losses and D gradients of two passes,
    minibatch-stddev groups included (batch 8, groups of 4)."""
    from progan_tf.training.step import joint_d_pass
    net, critic, reals, fakes = _critic_and_batches(8)
    assert joint_d_pass(net, 8)
    separate, separate_grads = _loss_and_grads(name, critic, reals, fakes, joint=False)
    joint, joint_grads = _loss_and_grads(name, critic, reals, fakes, joint=True)
    np.testing.assert_allclose(joint.numpy(), separate.numpy(), rtol=1e-5)
    # The absolute limit is set by the largest gradient of all: a WGAN output bias's gradient is a
    # difference of two means that nearly cancel (-3.7e-5, 3e-8 apart), so its own size is no scale.
    scale = max(float(np.abs(b.numpy()).max()) for b in separate_grads)
    for a, b in zip(joint_grads, separate_grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6 * scale)


def test_joint_pass_is_not_taken_when_a_stddev_group_would_span_reals_and_fakes():
    """Batch 2 < group 4: each pass alone is one group of 2, a joint pass one group of 4.
    That is another function, so the trainer keeps the passes apart there."""
    from progan_tf.training.step import joint_d_pass
    net, critic, reals, fakes = _critic_and_batches(2)
    assert not joint_d_pass(net, 2) and joint_d_pass(net, 4)
    separate, _ = _loss_and_grads("lsgan", critic, reals, fakes, joint=False)
    joint, _ = _loss_and_grads("lsgan", critic, reals, fakes, joint=True)
    assert abs(joint.numpy() - separate.numpy()) > 1e-4 * abs(separate.numpy())
