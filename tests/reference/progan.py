"""One ProGAN training iteration written out plainly: the specification in code.

A second, deliberately simple implementation of what the product computes, written
from the paper (Karras et al., "Progressive Growing of GANs", ICLR 2018; sections
cited as §) and DESIGN.md section 2. It imports nothing from progan_tf and has no
speed tricks: eager TensorFlow, unfused upsampling, separate critic passes, Adam as
its formula. Tests run the product and this file from the same weights and the same
random draws and demand the same numbers.

Weights are a dict of arrays keyed "<layer>/<kernel|bias>" with the product's layer
names (`g_block_16_conv0/kernel`), kernels stored N(0, 1)-scaled as the paper's
equalised learning rate keeps them: conv kernels [k, k, in, out], dense kernels
[fan_in, out], and G's first dense layer's output read as [4, 4, nf] (row-major).
"""
import dataclasses
import math

import numpy as np
import tensorflow as tf

SQRT2 = math.sqrt(2.0)
LEAK = 0.2  # §A.1: leaky ReLU with leakiness 0.2 in both networks, except the outputs
PIXELNORM_EPS = 1e-8  # §4.2
MBSTD_EPS = 1e-8


@dataclasses.dataclass(frozen=True)
class Arch:
    """The architecture knobs the paper varies (defaults: its 1024x1024 networks)."""
    latent_size: int = 512
    num_channels: int = 3
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    mbstd_group_size: int = 4  # 0: no minibatch-stddev layer
    use_wscale: bool = True  # False: Table 1's ablation, He-initialised weights used as they are
    use_pixelnorm: bool = True  # False: Table 1's ablation, no pixel norm after G's layers (z keeps its)
    fused_downsample: int = 0  # D blocks from this resolution pool before the activation (official fused scale)


def nf(arch, stage):
    """§A.1 / Table 2: feature maps at stage log2(res) - 1 (512 up to 32x32, then halving)."""
    return min(int(arch.fmap_base / 2.0 ** (stage * arch.fmap_decay)), arch.fmap_max)


def stage(res):
    return int(math.log2(res)) - 1


def resolutions(res):
    return [2 ** k for k in range(2, int(math.log2(res)) + 1)]


# ---- layer shapes and gains (Table 2, §4.1) ----------------------------------------------

def generator_shapes(arch, res, fading=False):
    """{layer: (kernel shape, gain)} of G at `res` (Table 2, top); biases have kernel.shape[-1] values,
    except the first layer's, which is per channel of its [4, 4, nf] output."""
    f4 = nf(arch, 1)
    layers = {"g_block_4_dense": ((arch.latent_size, 16 * f4), SQRT2 / 4),  # "Conv 4x4" on the latent
              "g_block_4_conv": ((3, 3, f4, f4), SQRT2)}
    for r in resolutions(res)[1:]:
        fin, fout = nf(arch, stage(r) - 1), nf(arch, stage(r))
        layers[f"g_block_{r}_conv0"] = ((3, 3, fin, fout), SQRT2)
        layers[f"g_block_{r}_conv1"] = ((3, 3, fout, fout), SQRT2)
    for r in ([res // 2, res] if fading else [res]):
        layers[f"g_torgb_{r}"] = ((1, 1, nf(arch, stage(r)), arch.num_channels), 1.0)  # linear output
    return layers


def discriminator_shapes(arch, res, fading=False):
    """{layer: (kernel shape, gain)} of D at `res` (Table 2, bottom)."""
    layers = {}
    for r in ([res // 2, res] if fading else [res]):
        layers[f"d_fromrgb_{r}"] = ((1, 1, arch.num_channels, nf(arch, stage(r))), SQRT2)
    for r in resolutions(res)[1:]:
        fin, fout = nf(arch, stage(r)), nf(arch, stage(r) - 1)
        layers[f"d_block_{r}_conv0"] = ((3, 3, fin, fin), SQRT2)
        layers[f"d_block_{r}_conv1"] = ((3, 3, fin, fout), SQRT2)
    f4 = nf(arch, 1)
    layers["d_block_4_conv"] = ((3, 3, f4 + (1 if arch.mbstd_group_size else 0), f4), SQRT2)
    layers["d_block_4_dense0"] = ((16 * f4, nf(arch, 0)), SQRT2)  # "Conv 4x4" to 1x1
    layers["d_block_4_dense1"] = ((nf(arch, 0), 1), 1.0)  # linear score
    return layers


# ---- building blocks -----------------------------------------------------------------------

def _scaled(kernel, gain, wscale):
    """§4.1 equalised learning rate: w_hat = w * gain / sqrt(fan_in), applied at run time."""
    fan_in = int(np.prod(kernel.shape[:-1]))
    return kernel * (gain / math.sqrt(fan_in)) if wscale else kernel


def conv(W, name, x, gain, wscale=True):
    kernel = _scaled(W[f"{name}/kernel"], gain, wscale)
    return tf.nn.conv2d(x, kernel, strides=1, padding="SAME") + W[f"{name}/bias"]


def dense(W, name, x, gain, wscale=True, shape=()):
    """Fully connected; `shape` reshapes the output before the (per last axis) bias."""
    y = tf.matmul(tf.reshape(x, [x.shape[0], -1]), _scaled(W[f"{name}/kernel"], gain, wscale))
    return tf.reshape(y, [x.shape[0], *shape, -1]) + W[f"{name}/bias"]


def lrelu(x):
    return tf.where(x >= 0, x, LEAK * x)


def pixel_norm(x):
    """§4.2: b = a / sqrt(mean_j(a_j^2) + 1e-8) over the channels of each pixel."""
    return x / tf.sqrt(tf.reduce_mean(x * x, axis=-1, keepdims=True) + PIXELNORM_EPS)


def upscale(x):
    """Nearest-neighbour doubling (§3, Figure 2)."""
    return tf.repeat(tf.repeat(x, 2, axis=1), 2, axis=2)


def downscale(x):
    """2x2 average pooling (§3, Figure 2)."""
    n, h, w, c = x.shape
    return tf.reduce_mean(tf.reshape(x, [n, h // 2, 2, w // 2, 2, c]), axis=[2, 4])


def lerp(a, b, t):
    return a + (b - a) * t


def minibatch_stddev(x, group_size):
    """§3: std of each feature and pixel over a group, averaged to one value, appended as a map.

    Groups are min(group_size, N) consecutive samples (the product's documented grouping).
    """
    n, h, w, c = x.shape
    g = min(group_size, n)
    groups = tf.reshape(x, [n // g, g, h, w, c])
    var = tf.reduce_mean(tf.square(groups - tf.reduce_mean(groups, axis=1, keepdims=True)), axis=1)
    value = tf.reduce_mean(tf.sqrt(var + MBSTD_EPS), axis=[1, 2, 3])  # one per group
    per_sample = tf.reshape(tf.repeat(value, g), [n, 1, 1, 1])
    return tf.concat([x, tf.broadcast_to(per_sample, [n, h, w, 1])], axis=-1)


# ---- the networks (§3, §A.1, Table 2) ------------------------------------------------------

def generator(W, arch, z, res, alpha=None):
    """G at `res`; with alpha, the fade of Figure 2: lerp(upscale(toRGB_old(h_old)), toRGB(h), alpha)."""
    ws = arch.use_wscale
    norm = pixel_norm if arch.use_pixelnorm else (lambda x: x)
    x = pixel_norm(z)  # §4.2: the latent is normalised too
    x = norm(lrelu(dense(W, "g_block_4_dense", x, SQRT2 / 4, ws, shape=(4, 4))))  # [N, 4, 4, nf]
    x = norm(lrelu(conv(W, "g_block_4_conv", x, SQRT2, ws)))
    h_old = None
    for r in resolutions(res)[1:]:
        h_old = x
        x = norm(lrelu(conv(W, f"g_block_{r}_conv0", upscale(x), SQRT2, ws)))
        x = norm(lrelu(conv(W, f"g_block_{r}_conv1", x, SQRT2, ws)))
    image = conv(W, f"g_torgb_{res}", x, 1.0, ws)
    if alpha is None:
        return image
    return lerp(upscale(conv(W, f"g_torgb_{res // 2}", h_old, 1.0, ws)), image, alpha)


def discriminator(W, arch, images, res, alpha=None):
    """D at `res`; with alpha: lerp(fromRGB_old(downscale(x)), block(fromRGB(x)), alpha). Scores [N]."""
    ws = arch.use_wscale
    x = lrelu(conv(W, f"d_fromrgb_{res}", images, SQRT2, ws))
    for r in reversed(resolutions(res)[1:]):
        x = lrelu(conv(W, f"d_block_{r}_conv0", x, SQRT2, ws))
        y = conv(W, f"d_block_{r}_conv1", x, SQRT2, ws)
        # The official code's fused D block (conv2d_downscale2d) pools before the activation.
        x = lrelu(downscale(y)) if 0 < arch.fused_downsample <= r else downscale(lrelu(y))
        if r == res and alpha is not None:
            x = lerp(lrelu(conv(W, f"d_fromrgb_{res // 2}", downscale(images), SQRT2, ws)), x, alpha)
    if arch.mbstd_group_size:
        x = minibatch_stddev(x, arch.mbstd_group_size)
    x = lrelu(conv(W, "d_block_4_conv", x, SQRT2, ws))
    x = lrelu(dense(W, "d_block_4_dense0", x, SQRT2, ws))
    return tf.reshape(dense(W, "d_block_4_dense1", x, 1.0, ws), [-1])


def fade_reals(reals, alpha):
    """§A.1 / official code: during a fade the reals are blended like G's output."""
    return lerp(upscale(downscale(reals)), reals, alpha)


def mirror(images, flip):
    """Left-right mirror of the images where `flip` [N] is True (mirror augmentation)."""
    return tf.where(tf.reshape(flip, [-1, 1, 1, 1]), images[:, :, ::-1, :], images)


# ---- losses (per example; the step averages them over the global batch) -------------------

def _input_grad(D, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        scores = D(x)
        total = tf.reduce_sum(scores)
    return scores, tape.gradient(total, x)


def d_loss(kind, D, reals, fakes, mixing, gp_lambda, drift, r1_gamma):
    if kind == "wgan_gp":  # Gulrajani et al. 2017 + §A.1's drift term
        d_real, d_fake = D(reals), D(fakes)
        _, g = _input_grad(D, lerp(reals, fakes, mixing))  # one mixing weight per sample
        norm = tf.sqrt(tf.reduce_sum(g * g, axis=[1, 2, 3]))
        return d_fake - d_real + gp_lambda * tf.square(norm - 1.0) + drift * tf.square(d_real)
    if kind == "lsgan":  # Mao et al. 2017, targets 0 (fake) and 1 (real)
        return 0.5 * (tf.square(D(reals) - 1.0) + tf.square(D(fakes)))
    if kind == "logistic":  # non-saturating loss with the R1 penalty on reals (Mescheder et al. 2018)
        d_real, g = _input_grad(D, reals)
        return (tf.math.softplus(D(fakes)) + tf.math.softplus(-d_real)
                + 0.5 * r1_gamma * tf.reduce_sum(g * g, axis=[1, 2, 3]))
    raise ValueError(kind)


def g_loss(kind, d_fake):
    return {"wgan_gp": -d_fake, "lsgan": 0.5 * tf.square(d_fake - 1.0),
            "logistic": tf.math.softplus(-d_fake)}[kind]


# ---- optimiser and the iteration -----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Hyper:
    """§A.1 training hyper-parameters."""
    loss: str = "wgan_gp"
    gp_lambda: float = 10.0
    drift: float = 0.001
    r1_gamma: float = 10.0
    lr: float = 0.001
    beta1: float = 0.0
    beta2: float = 0.99
    epsilon: float = 1e-8
    g_ema_beta: float = 0.999
    g_ema_kimg: float = 0.0  # > 0: the average's half-life in kimg instead of a fixed beta
    g_ema_rampup: float = 0.0  # > 0: half-life at most rampup * images seen


def ema_beta(hp, batch, images_seen):
    """§A.1's fixed decay, or the half-life form (Karras et al. 2020): beta = 0.5 ** (batch / half-life)."""
    if not hp.g_ema_kimg:
        return hp.g_ema_beta
    half_life = hp.g_ema_kimg * 1000
    if hp.g_ema_rampup:
        half_life = min(half_life, hp.g_ema_rampup * images_seen)
    return 0.5 ** (batch / max(half_life, 1e-8))


def adam(w, g, m, v, t, hp):
    """Kingma & Ba, Algorithm 1 in the form of its §2 remark (TF's AdamOptimizer, as the official code).

    Returns (w, m, v) after step t (1-based).
    """
    m = hp.beta1 * m + (1.0 - hp.beta1) * g
    v = hp.beta2 * v + (1.0 - hp.beta2) * g * g
    step = hp.lr * math.sqrt(1.0 - hp.beta2 ** t) / (1.0 - hp.beta1 ** t)
    return w - step * m / (tf.sqrt(v) + hp.epsilon), m, v


@dataclasses.dataclass
class State:
    """Everything an iteration changes. Weight dicts of float32 tensors; slots keyed like them."""
    G: dict
    D: dict
    Gs: dict
    g_m: dict
    g_v: dict
    d_m: dict
    d_v: dict
    t: int = 0  # Adam steps taken in this phase (the optimisers are fresh per phase)

    @classmethod
    def fresh(cls, G, D, Gs):
        as_tf = lambda d: {k: tf.constant(v, tf.float32) for k, v in d.items()}
        zeros = lambda d: {k: tf.zeros_like(tf.constant(v, tf.float32)) for k, v in d.items()}
        return cls(as_tf(G), as_tf(D), as_tf(Gs), zeros(G), zeros(G), zeros(D), zeros(D))


def _adam_all(W, grads, m, v, t, hp):
    out_w, out_m, out_v = {}, {}, {}
    for k in W:
        out_w[k], out_m[k], out_v[k] = adam(W[k], grads[k], m[k], v[k], t, hp)
    return out_w, out_m, out_v


def _value_and_grads(fn, W):
    variables = {k: tf.Variable(v) for k, v in W.items()}
    with tf.GradientTape() as tape:
        value = fn(variables)
    grads = tape.gradient(value, variables)
    return value, {k: grads[k] for k in W}


def iteration(s, arch, hp, res, reals, z_d, mixing, z_g, alpha=None, images_seen=0):
    """One D step then one G step (n_critic = 1, §A.1), then Gs = lerp(G, Gs, beta) (§A.1).

    Args:
      s: State before the iteration.
      reals: [N, res, res, C] in [-1, 1] (mirrored already, not yet faded).
      z_d, z_g: [N, latent] latents of the D and the G step (two separate draws).
      mixing: [N, 1, 1, 1] penalty interpolation weights.
      alpha: fade-in alpha, None in a stable phase.
      images_seen: images seen before this iteration (for the half-life form of the average).

    Returns:
      (State after, d_loss, g_loss) with the losses averaged over the batch.
    """
    if alpha is not None:
        reals = fade_reals(reals, alpha)
    G = lambda W, z: generator(W, arch, z, res, alpha)
    D = lambda W: (lambda x: discriminator(W, arch, x, res, alpha))
    fakes = G(s.G, z_d)
    loss_d, grads = _value_and_grads(
        lambda W: tf.reduce_mean(d_loss(hp.loss, D(W), reals, fakes, mixing, hp.gp_lambda, hp.drift, hp.r1_gamma)),
        s.D)
    t = s.t + 1
    new_d, d_m, d_v = _adam_all(s.D, grads, s.d_m, s.d_v, t, hp)
    loss_g, grads = _value_and_grads(lambda W: tf.reduce_mean(g_loss(hp.loss, D(new_d)(G(W, z_g)))), s.G)
    new_g, g_m, g_v = _adam_all(s.G, grads, s.g_m, s.g_v, t, hp)
    beta = ema_beta(hp, reals.shape[0], images_seen)
    gs = {k: lerp(new_g[k], s.Gs[k], beta) for k in new_g}
    return State(new_g, new_d, gs, g_m, g_v, d_m, d_v, t), float(loss_d), float(loss_g)


def grow(old, new_init, fresh_gs=None):
    """§3 growth: every layer the old network has keeps its weights; new layers start fresh.

    Args:
      old: weight dict of the previous phase.
      new_init: initial weights of the next phase (their values for the new layers).
      fresh_gs: for Gs: the grown G, whose new layers Gs starts from.
    """
    source = fresh_gs if fresh_gs is not None else new_init
    return {k: (old[k] if k in old else source[k]) for k in new_init}


def draws(seed, step, batch, latent_size):
    """The product's random-number contract: each draw for the global batch, stateless in (seed, step).

    Streams: 0 = D-step latents, 1 = penalty mixing weights, 2 = G-step latents.
    """
    def draw(stream, shape, fn):
        return fn([batch, *shape], seed=tf.stack([tf.constant(seed * 8 + stream, tf.int64), tf.cast(step, tf.int64)]),
                  alg="philox")

    return (draw(0, [latent_size], tf.random.stateless_normal),
            draw(1, [1, 1, 1], tf.random.stateless_uniform),
            draw(2, [latent_size], tf.random.stateless_normal))
