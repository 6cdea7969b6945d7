"""GAN losses as pure functions of the critic and the images.

Every function returns per-example losses [N] (float32). The trainer reduces them with
`tf.nn.compute_average_loss(global_batch_size=...)`, so replicas sum to the mean over the global batch.
"""
import tensorflow as tf

LOSSES = ("wgan_gp", "lsgan", "logistic")


def _scores(critic, images):
    return tf.cast(tf.reshape(critic(images, training=True), [-1]), tf.float32)  # [N]


def _scores_pair(critic, reals, fakes, joint=False):
    """(D(reals) [N], D(fakes) [N]).

    With `joint`, one critic pass over [reals; fakes] (2N): half as many ops, each on twice the batch, which saves the
    fixed cost per op (3-5 % of the step at 4x4 and 8x8). It is the same function only if no group of samples that
    the critic mixes straddles the two halves. The trainer's discriminator mixes samples only in minibatch-stddev
    groups of min(group size, batch) consecutive samples, so it passes joint when N is at least the group size (and so
    a multiple of it).
    """
    if not joint:
        return _scores(critic, reals), _scores(critic, fakes)
    return tuple(tf.split(_scores(critic, tf.concat([reals, fakes], 0)), 2))


def input_gradient(critic, images, loss_scale=None):
    """images [N, H, W, C] -> (scores [N], float32 gradients [N, H, W, C]): d sum(critic(images)) / d images.

    With a loss_scale (float16), the gradient is taken of the scaled scores, so small gradients do not flush to zero,
    and unscaled after.
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
    """[N] WGAN-GP penalties (||grad D(x_hat)|| - target)^2 / target^2 at x_hat = lerp(reals, fakes, mixing).

    reals, fakes: [N, H, W, C]; mixing: [N, 1, 1, 1] in [0, 1]; target: the gradient norm pulled towards (1 in WGAN-GP).
    """
    mixed = reals + (fakes - reals) * tf.cast(mixing, reals.dtype)
    _, grads = input_gradient(critic, mixed, loss_scale)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))  # [N]
    return tf.square(norms - target) / (target ** 2)


def wgan_gp_d_loss(critic, reals, fakes, mixing, gp_lambda=10.0, gp_target=1.0, drift=0.001,
                   loss_scale=None, joint=False):
    """[N] critic loss D(fake) - D(real) + lambda * GP + drift * D(real)^2 (paper §A.1); `joint`: as `_scores_pair`."""
    real_scores, fake_scores = _scores_pair(critic, reals, fakes, joint)
    penalty = gradient_penalty(critic, reals, fakes, mixing, gp_target, loss_scale)
    return fake_scores - real_scores + gp_lambda * penalty + drift * tf.square(real_scores)


def wgan_g_loss(fake_scores):
    """Generator loss -D(G(z))."""
    return -fake_scores


def lsgan_d_loss(critic, reals, fakes, joint=False):
    """Least-squares critic loss 0.5 * ((D(real) - 1)^2 + D(fake)^2); `joint`: see `_scores_pair`."""
    real_scores, fake_scores = _scores_pair(critic, reals, fakes, joint)
    return 0.5 * (tf.square(real_scores - 1.0) + tf.square(fake_scores))


def lsgan_g_loss(fake_scores):
    """Least-squares generator loss 0.5 * (D(G(z)) - 1)^2."""
    return 0.5 * tf.square(fake_scores - 1.0)


def logistic_d_loss(critic, reals, fakes, r1_gamma=10.0, loss_scale=None, joint=False):
    """Logistic critic loss softplus(D(fake)) + softplus(-D(real)) + gamma/2 * ||grad D(real)||^2 (R1).

    `joint` (see `_scores_pair`) applies without R1 only: R1's input gradient is of the reals alone.
    """
    if r1_gamma:
        fake_scores = _scores(critic, fakes)
        real_scores, grads = input_gradient(critic, reals, loss_scale)
        r1 = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])  # [N]
    else:
        (real_scores, fake_scores), r1 = _scores_pair(critic, reals, fakes, joint), 0.0
    return tf.nn.softplus(fake_scores) + tf.nn.softplus(-real_scores) + 0.5 * r1_gamma * r1


def logistic_g_loss(fake_scores):
    """Non-saturating generator loss softplus(-D(G(z)))."""
    return tf.nn.softplus(-fake_scores)


def d_loss(name, critic, reals, fakes, mixing, gp_lambda=10.0, drift=0.001, r1_gamma=10.0, loss_scale=None,
           joint=False):
    """The critic's per-example loss for loss `name` (one of LOSSES); `joint`: see `_scores_pair`."""
    if name == "wgan_gp":
        return wgan_gp_d_loss(critic, reals, fakes, mixing, gp_lambda, 1.0, drift, loss_scale, joint)
    if name == "lsgan":
        return lsgan_d_loss(critic, reals, fakes, joint)
    if name == "logistic":
        return logistic_d_loss(critic, reals, fakes, r1_gamma, loss_scale, joint)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


def g_loss(name, fake_scores):
    """The generator's per-example loss for loss `name` given D(G(z)) [N]."""
    fns = {"wgan_gp": wgan_g_loss, "lsgan": lsgan_g_loss, "logistic": logistic_g_loss}
    if name not in fns:
        raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")
    return fns[name](fake_scores)
