"""The training step: one D step and one G step on every replica, then the Gs update.

Every random number of a step is drawn statelessly from (seed, step) for the global
batch and sliced per replica, so a step is the same computation on 1 replica or on N,
and a resumed run replays what an uninterrupted one would have done. Streams:
0 = the D step's latents, 1 = the penalty's interpolation weights, 2 = the G step's latents.
"""
import functools

import keras
import tensorflow as tf

from progan_tf import losses, networks
from progan_tf.ops import fade_reals


def joint_d_pass(network, per_replica_batch):
    """Whether D can score reals and fakes in one pass over [reals; fakes].

    D mixes samples only in minibatch-stddev groups of min(group size, batch) consecutive
    samples. With at least a group's worth of samples per replica (a multiple of it, by
    `validate`), the groups of the joint batch lie within the reals or the fakes, as in
    separate passes; with fewer, a joint group would span both.
    """
    group = network.mbstd_group_size
    return not group or per_replica_batch >= group


def _replica_step(strategy, models, network, config, reals, step, alpha):
    """One D step and one G step on this replica's slice of the global batch."""
    global_batch = models.phase.batch_size
    batch = tf.shape(reals)[0]
    first = tf.distribute.get_replica_context().replica_id_in_sync_group * batch

    def draw(stream, shape, fn):
        seed = tf.stack([tf.constant(config.seed * 8 + stream, tf.int64), tf.cast(step, tf.int64)])
        # Philox by name, so the bits do not depend on what "auto_select" picks. XLA still turns
        # them into other floats than TensorFlow's kernels do: an --xla run draws other latents.
        return tf.slice(fn([global_batch, *shape], seed=seed, alg="philox"), [first] + [0] * len(shape),
                        [batch, *shape])

    if models.phase.fading:
        reals = fade_reals(reals, alpha)
    z_d = draw(0, [network.latent_size], tf.random.stateless_normal)  # [B, latent]
    mixing = draw(1, [1, 1, 1], tf.random.stateless_uniform)  # [B, 1, 1, 1]: one weight per sample
    z_g = draw(2, [network.latent_size], tf.random.stateless_normal)
    scaled = isinstance(models.d_opt, keras.optimizers.LossScaleOptimizer)

    fakes = models.G(z_d, training=True)
    joint = joint_d_pass(network, global_batch // strategy.num_replicas_in_sync)
    with tf.GradientTape() as tape:
        inner_scale = tf.cast(models.d_opt.dynamic_scale, tf.float32) if scaled else None
        d_loss = tf.nn.compute_average_loss(
            losses.d_loss(config.loss, models.D, reals, fakes, mixing, config.gp_lambda, config.drift,
                          config.r1_gamma, inner_scale, joint),
            global_batch_size=global_batch)
        d_objective = models.d_opt.scale_loss(d_loss) if scaled else d_loss
    d_vars = models.D.trainable_variables
    models.d_opt.apply_gradients(zip(tape.gradient(d_objective, d_vars), d_vars))

    with tf.GradientTape() as tape:
        scores = tf.reshape(tf.cast(models.D(models.G(z_g, training=True), training=True), tf.float32), [-1])
        g_loss = tf.nn.compute_average_loss(losses.g_loss(config.loss, scores), global_batch_size=global_batch)
        g_objective = models.g_opt.scale_loss(g_loss) if scaled else g_loss
    g_vars = models.G.trainable_variables
    models.g_opt.apply_gradients(zip(tape.gradient(g_objective, g_vars), g_vars))
    return d_loss, g_loss


def make_train_step(strategy, models, network, config, steps_per_call=None):
    """The compiled, distributed step: set alpha, train D and G on every replica, update Gs.

    `models`: PhaseModels built under `strategy`; `network`, `config`: NetworkConfig, TrainConfig. With `steps_per_call`
    None: a function of one step on given images, fn(reals per replica, step int64, alpha float32, beta float32) ->
    (d_loss, g_loss). With k: a function of up to k steps on batches taken from a distributed iterator, fn(iterator,
    first_step int64, alphas float32 [k], betas float32 [k], count int32) -> (d_losses [k], g_losses [k]), running steps
    first_step .. first_step + count - 1 at alphas[:count] with Gs decays betas[:count] (later losses are 0).
    """
    fades = [layer.alpha for model in (models.G, models.D, models.Gs) for layer in networks.fade_layers(model)]

    def train_step(reals, step, alpha, beta):
        for variable in fades:
            variable.assign(alpha)
        replica_step = functools.partial(_replica_step, strategy, models, network, config)
        d_loss, g_loss = strategy.run(replica_step, args=(reals, step, alpha))
        for gs_var, g_var in zip(models.Gs.trainable_variables, models.G.trainable_variables):
            gs_var.assign(g_var + (gs_var - g_var) * beta)
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, d_loss, None), strategy.reduce(total, g_loss, None)

    # No AutoGraph: the step has no Python control flow on tensors, and converting its source costs every process
    # a second or two of start-up (half the first trace of a small network).
    step_fn = tf.function(train_step, jit_compile=config.xla or None, autograph=False)
    if steps_per_call is None:
        return step_fn

    def train_steps(data, first_step, alphas, betas, count):
        def body(i, d_losses, g_losses):
            d_loss, g_loss = step_fn(next(data), first_step + tf.cast(i, tf.int64), alphas[i], betas[i])
            return (i + 1, tf.tensor_scatter_nd_update(d_losses, [[i]], [d_loss]),
                    tf.tensor_scatter_nd_update(g_losses, [[i]], [g_loss]))

        zeros = tf.zeros([steps_per_call])  # [k]
        _, d_losses, g_losses = tf.while_loop(lambda i, *_: i < count, body, (tf.constant(0), zeros, zeros))
        return d_losses, g_losses

    return tf.function(train_steps, autograph=False)


class NonFinite(Exception):
    """A NaN or Inf in the losses or weights: the run restores its newest checkpoint and goes on."""


def check_finite(models):
    """Raise NonFinite if any weight of G, D or Gs is NaN or Inf."""
    for part in ("G", "D", "Gs"):
        variables = getattr(models, part).trainable_variables
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in variables):
            raise NonFinite(f"non-finite weights in {part}")
