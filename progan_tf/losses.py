"""GAN losses as pure functions of the critic and the images.

Every function returns per-example losses [N] (float32). The trainer reduces them
with `tf.nn.compute_average_loss(global_batch_size=...)`, so replicas sum to the
mean over the global batch.
"""
import tensorflow as tf

LOSSES = ("wgan_gp", "lsgan", "logistic")


def _scores(critic, images):
    return tf.cast(tf.reshape(critic(images, training=True), [-1]), tf.float32)  # [N]


def input_gradient(critic, images, loss_scale=None):
    """d sum(critic(images)) / d images, per example.

    Args:
      critic: the discriminator.
      images: [N, H, W, C].
      loss_scale: optional scalar. Under float16 the inner gradient is taken of the
        scaled scores (so small gradients do not flush to zero) and unscaled after.

    Returns:
      (scores [N], gradients [N, H, W, C] float32).
    """
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = _scores(critic, images)
        total = tf.reduce_sum(scores) if loss_scale is None else tf.reduce_sum(scores) * loss_scale
    grads = tf.cast(tape.gradient(total, images), tf.float32)
    if loss_scale is not None:
        grads = grads / loss_scale
    return scores, grads


def gradient_penalty(critic, reals, fakes, mixing, target=1.0, loss_scale=None):
    """WGAN-GP penalty (||grad D(x_hat)|| - target)^2 / target^2 at x_hat = lerp(reals, fakes, mixing).

    Args:
      critic: the discriminator.
      reals, fakes: [N, H, W, C].
      mixing: [N, 1, 1, 1] interpolation factors in [0, 1].
      target: the gradient norm the penalty pulls towards (1 in WGAN-GP).
      loss_scale: see `input_gradient`.

    Returns:
      [N] penalties.
    """
    mixed = reals + (fakes - reals) * tf.cast(mixing, reals.dtype)
    _, grads = input_gradient(critic, mixed, loss_scale)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))  # [N]
    return tf.square(norms - target) / (target ** 2)


def wgan_gp_d_loss(critic, reals, fakes, mixing, gp_lambda=10.0, gp_target=1.0, drift=0.001,
                   loss_scale=None):
    """Critic loss D(fake) - D(real) + lambda * GP + drift * D(real)^2 (paper §A.1).

    Returns:
      [N] per-example losses.
    """
    real_scores, fake_scores = _scores(critic, reals), _scores(critic, fakes)
    penalty = gradient_penalty(critic, reals, fakes, mixing, gp_target, loss_scale)
    return fake_scores - real_scores + gp_lambda * penalty + drift * tf.square(real_scores)


def wgan_g_loss(fake_scores):
    """Generator loss -D(G(z))."""
    return -fake_scores


def lsgan_d_loss(critic, reals, fakes):
    """Least-squares critic loss 0.5 * ((D(real) - 1)^2 + D(fake)^2)."""
    return 0.5 * (tf.square(_scores(critic, reals) - 1.0) + tf.square(_scores(critic, fakes)))


def lsgan_g_loss(fake_scores):
    """Least-squares generator loss 0.5 * (D(G(z)) - 1)^2."""
    return 0.5 * tf.square(fake_scores - 1.0)


def logistic_d_loss(critic, reals, fakes, r1_gamma=10.0, loss_scale=None):
    """Logistic critic loss softplus(D(fake)) + softplus(-D(real)) + gamma/2 * ||grad D(real)||^2 (R1)."""
    fake_scores = _scores(critic, fakes)
    if r1_gamma:
        real_scores, grads = input_gradient(critic, reals, loss_scale)
        r1 = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])  # [N]
    else:
        real_scores, r1 = _scores(critic, reals), 0.0
    return tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores) + 0.5 * r1_gamma * r1


def logistic_g_loss(fake_scores):
    """Non-saturating generator loss softplus(-D(G(z)))."""
    return tf.nn.softplus(-fake_scores)


def d_loss(name, critic, reals, fakes, mixing, gp_lambda=10.0, drift=0.001, r1_gamma=10.0, loss_scale=None):
    """The critic's per-example loss for loss `name` (one of LOSSES)."""
    if name == "wgan_gp":
        return wgan_gp_d_loss(critic, reals, fakes, mixing, gp_lambda, 1.0, drift, loss_scale)
    if name == "lsgan":
        return lsgan_d_loss(critic, reals, fakes)
    if name == "logistic":
        return logistic_d_loss(critic, reals, fakes, r1_gamma, loss_scale)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def g_loss(name, fake_scores):
    """The generator's per-example loss for loss `name` given D(G(z)) [N]."""
    fns = {"wgan_gp": wgan_g_loss, "lsgan": lsgan_g_loss, "logistic": logistic_g_loss}
    if name not in fns:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    return fns[name](fake_scores)
