"""Generator and discriminator of one stage, built as plain functional Keras models.

Each stage (resolution R, fading or stable) is its own model; layer names carry the resolution (`g_block_32_conv1`,
`g_torgb_16`, `d_fromrgb_64`), and `copy_weights` copies every weight whose layer exists in both the old and the new
model. At alpha = 0 a fading model computes exactly what the previous stage's model did.
"""
import dataclasses
import math
import zlib

import keras
import tensorflow as tf

from progan_tf.errors import ConfigError
from progan_tf.resolutions import is_resolution, resolutions_between
from progan_tf.layers import (SQRT2, Downsample2D, FadeIn, LeakyReLU, MinibatchStdDev, PixelNorm, Upsample2D,
                              WeightScaledConv2D, WeightScaledDense)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture hyper-parameters; defaults are the paper's 1024x1024 networks.

    Attributes:
      resolution: final output resolution (power of two, >= 4).
      num_channels: image channels (3 RGB, 1 grayscale).
      latent_size: dimensionality of z.
      fmap_base: feature-map count numerator: nf(stage) = fmap_base / 2**(stage * fmap_decay).
      fmap_decay: log2 decrease of feature maps per stage.
      fmap_max: cap on feature maps per layer.
      mbstd_group_size: minibatch-stddev group size (0 disables the layer).
      normalize_latents: PixelNorm on z before the first layer.
      pixelnorm: PixelNorm after every generator conv (False: the ablation "no pixelnorm", --nopixelnorm).
      wscale: the equalised learning rate (False: He-initialised weights without a run-time scale, --nowscale).
      leaky_slope: LeakyReLU negative slope.
      fused_upsample: generator blocks of this resolution and up run their upsample +
        first conv as one transposed conv (`WeightScaledConv2D(upsample=True)`): the
        same function and weights in 44 % of that conv's FLOPs. 0 = never. 8, as in the
        official code (benchmarks/RESULTS.md has the speed of each). Fused blocks have no
        upsample layer, so checkpoints are only compatible between configs with the same
        value.
      fused_downsample: discriminator blocks of this resolution and up run their second
        conv and the 2x2 average pool as one 4x4 stride-2 conv (the official code's fused
        scale, `WeightScaledConv2D(downsample=True)`, 44 % of that conv's FLOPs),
        followed by the bias and activation. The official D pools before the activation,
        the unfused one after it: a slightly different function of the same weights, so
        a run resumes only with the value it started with. 8, as in the official code;
        0 = never (the unfused D of runs that started with it).
    """
    resolution: int = 1024
    num_channels: int = 3
    latent_size: int = 512
    fmap_base: int = 8192
    fmap_decay: float = 1.0
    fmap_max: int = 512
    mbstd_group_size: int = 4
    normalize_latents: bool = True
    pixelnorm: bool = True
    wscale: bool = True
    leaky_slope: float = 0.2
    fused_upsample: int = 8
    fused_downsample: int = 8

    def __post_init__(self):
        if not is_resolution(self.resolution):
            raise ConfigError("{resolution}={value} is not a power of two >= 4 (try 32, 256 or 1024)",
                              value=self.resolution)
        for name in ("num_channels", "latent_size", "fmap_base", "fmap_max"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{{{name}}}={{value!r}} must be a positive integer", value=getattr(self, name))
        if self.num_channels not in (1, 3):
            raise ConfigError("{num_channels}={value} must be 1 (greyscale) or 3 (RGB)", value=self.num_channels)
        if not 0 < self.fmap_decay <= 8:
            raise ConfigError("{fmap_decay}={value} must be in (0, 8]", value=self.fmap_decay)
        if self.mbstd_group_size < 0:
            raise ConfigError("{mbstd_group_size}={value} must be >= 0 (0 turns the layer off)",
                              value=self.mbstd_group_size)
        if not 0 < self.leaky_slope < 1:
            raise ConfigError("{leaky_slope}={value} must be in (0, 1)", value=self.leaky_slope)
        for name in ("fused_upsample", "fused_downsample"):
            value = getattr(self, name)
            if value != 0 and not (is_resolution(value) and value >= 8):
                raise ConfigError(f"{{{name}}}={{value!r}} must be 0 (off) or a resolution >= 8", value=value)

    def nf(self, stage):
        """Feature maps at `stage` = log2(resolution) - 1."""
        return min(int(self.fmap_base / 2.0 ** (stage * self.fmap_decay)), self.fmap_max)

    @property
    def resolutions(self):
        """Every training resolution, 4 .. resolution."""
        return resolutions_between(4, self.resolution)

    def to_dict(self):
        return dataclasses.asdict(self)


def _stage(resolution):
    return int(math.log2(resolution)) - 1


def _check_stage(config, resolution, fading):
    if resolution not in config.resolutions:
        raise ValueError(f"resolution {resolution} is not a stage of this network; "
                         f"choose one of {config.resolutions}")
    if fading and resolution == 4:
        raise ValueError("the 4x4 stage has no previous stage to fade from")


def _act(config, name):
    return LeakyReLU(negative_slope=config.leaky_slope, name=name)


def _g_conv(config, x, filters, name, upsample=False):
    """[upsample x2 ->] conv3x3 -> LeakyReLU -> PixelNorm, the generator's unit."""
    x = WeightScaledConv2D(filters, 3, upsample=upsample, use_wscale=config.wscale, name=name)(x)
    x = _act(config, f"{name}_act")(x)
    return PixelNorm(name=f"{name}_norm")(x) if config.pixelnorm else x


def _torgb(config, x, resolution):
    return WeightScaledConv2D(config.num_channels, 1, gain=1.0, use_wscale=config.wscale,
                              name=f"g_torgb_{resolution}")(x)


def build_generator(config, resolution, fading=False):
    """One stage's generator: keras.Model latents float32 [N, latent_size] -> images float32 [N, R, R, C], ~[-1, 1].

    R = resolution (4 .. config.resolution). With fading, the output blends the upsampled previous-stage image into
    this stage's image through a `FadeIn` layer named "g_fade" (alpha starts at 0).
    """
    _check_stage(config, resolution, fading)
    latents = keras.Input((config.latent_size,), name="latents")
    x = PixelNorm(name="g_latent_norm")(latents) if config.normalize_latents else latents
    # The first layer is a dense to 4x4xnf (a 4x4 conv on a 1x1 input); gain sqrt(2)/4 as in the official code.
    x = WeightScaledDense(16 * config.nf(1), gain=SQRT2 / 4, target_shape=(4, 4, config.nf(1)),
                          use_wscale=config.wscale, name="g_block_4_dense")(x)
    x = _act(config, "g_block_4_dense_act")(x)
    x = PixelNorm(name="g_block_4_dense_norm")(x) if config.pixelnorm else x
    x = _g_conv(config, x, config.nf(1), "g_block_4_conv")  # [N, 4, 4, nf]
    h_old = None
    for res in config.resolutions[1:config.resolutions.index(resolution) + 1]:
        h_old = x
        fused = 0 < config.fused_upsample <= res
        if not fused:
            x = Upsample2D(name=f"g_block_{res}_up")(x)
        x = _g_conv(config, x, config.nf(_stage(res)), f"g_block_{res}_conv0", upsample=fused)
        x = _g_conv(config, x, config.nf(_stage(res)), f"g_block_{res}_conv1")  # [N, res, res, nf]
    images = _torgb(config, x, resolution)
    if fading:
        old = _torgb(config, h_old, resolution // 2)
        old = Upsample2D(name="g_fade_up")(old)
        images = FadeIn(name="g_fade")([old, images])
    # The boundary is float32 whatever the layers' mixed-precision policy.
    images = keras.layers.Activation("linear", dtype="float32", name="g_images")(images)
    return keras.Model(latents, images, name=f"generator_{resolution}{'_fade' if fading else ''}")


def _fromrgb(config, x, resolution):
    x = WeightScaledConv2D(config.nf(_stage(resolution)), 1, use_wscale=config.wscale,
                           name=f"d_fromrgb_{resolution}")(x)
    return _act(config, f"d_fromrgb_{resolution}_act")(x)


def _d_conv(config, x, filters, name, downsample=False):
    x = WeightScaledConv2D(filters, 3, use_wscale=config.wscale, downsample=downsample, name=name)(x)
    return _act(config, f"{name}_act")(x)


def build_discriminator(config, resolution, fading=False):
    """One stage's discriminator (critic), the generator's mirror: keras.Model images [N, R, R, C] -> scores [N, 1].

    Both float32. With fading, fromRGB of the 2x2-averaged input (the previous stage's path) is blended with this
    stage's first block through a `FadeIn` named "d_fade".
    """
    _check_stage(config, resolution, fading)
    images = keras.Input((resolution, resolution, config.num_channels), name="images")
    x = _fromrgb(config, images, resolution)
    for res in reversed(config.resolutions[1:config.resolutions.index(resolution) + 1]):
        x = _d_conv(config, x, config.nf(_stage(res)), f"d_block_{res}_conv0")
        fused = 0 < config.fused_downsample <= res
        x = _d_conv(config, x, config.nf(_stage(res) - 1), f"d_block_{res}_conv1", downsample=fused)
        if not fused:
            x = Downsample2D(name=f"d_block_{res}_down")(x)  # [N, res/2, res/2, nf]
        if fading and res == resolution:
            old = Downsample2D(name="d_fade_down")(images)
            old = _fromrgb(config, old, resolution // 2)
            x = FadeIn(name="d_fade")([old, x])
    if config.mbstd_group_size:
        x = MinibatchStdDev(config.mbstd_group_size, name="d_block_4_mbstd")(x)  # [N, 4, 4, nf + 1]
    x = _d_conv(config, x, config.nf(1), "d_block_4_conv")
    x = WeightScaledDense(config.nf(0), use_wscale=config.wscale, name="d_block_4_dense0")(x)
    x = _act(config, "d_block_4_dense0_act")(x)
    x = WeightScaledDense(1, gain=1.0, use_wscale=config.wscale, name="d_block_4_dense1")(x)
    scores = keras.layers.Activation("linear", dtype="float32", name="d_scores")(x)
    return keras.Model(images, scores, name=f"discriminator_{resolution}{'_fade' if fading else ''}")


def fade_layers(model):
    """The FadeIn layers of a model (empty for a stable-phase model)."""
    return [layer for layer in model.layers if isinstance(layer, FadeIn)]


def set_alpha(model, alpha):
    """Assign the fade-in alpha of every FadeIn layer in `model`."""
    for layer in fade_layers(model):
        layer.alpha.assign(alpha)


def initialize_weights(model, seed):
    """Re-draw every kernel N(0, init_std^2) (1, or He's std without wscale) and zero every bias, reproducibly.

    Each weight's values depend only on (seed, layer name, weight name), so a layer starts identically however many
    models were built before it, and a run started twice with the same seed starts from the same weights.
    """
    for layer in model.layers:
        if isinstance(layer, FadeIn):
            continue
        for weight in layer.weights:
            if weight.name == "bias":
                weight.assign(tf.zeros(weight.shape, weight.dtype))
            else:
                key = zlib.crc32(f"{layer.name}/{weight.name}".encode())
                weight.assign(tf.random.stateless_normal(weight.shape, seed=[seed, key], dtype=weight.dtype,
                                                         stddev=layer.init_std))


def copy_weights(src, dst, require_all=False):
    """Copy every weight of `src` into the layer of the same name in `dst`; returns the names of the copied layers.

    This is how a phase grows into the next (layers only in `src`, the previous toRGB / fromRGB after a fade, are
    dropped) and how a stable network is read out of a fading one. FadeIn alphas are never copied: an alpha belongs to
    its own model. With require_all, every layer of `dst` with weights needs a source; otherwise only the layers new at
    `dst`'s own resolution (its new block and toRGB / fromRGB) may lack one and keep their initialisation.
    Raises ValueError if a shared layer's weights differ in shape or a layer lacks a source it needs: the models do
    not belong together (both must come from the same NetworkConfig).
    """
    sources = {layer.name: layer for layer in src.layers if layer.weights and not isinstance(layer, FadeIn)}
    resolution = dst.output_shape[1] if dst.name.startswith("generator") else dst.input_shape[1]
    copied, missing = [], []
    for layer in dst.layers:
        if not layer.weights or isinstance(layer, FadeIn):
            continue
        if layer.name not in sources:
            if require_all or not _belongs_to(layer.name, resolution):
                missing.append(layer.name)
            continue
        for s, d in zip(sources[layer.name].weights, layer.weights):
            if tuple(s.shape) != tuple(d.shape):
                raise ValueError(f"cannot copy layer {layer.name!r}: weight {s.name} has shape {tuple(s.shape)} "
                                 f"in {src.name!r} but {tuple(d.shape)} in {dst.name!r}")
            d.assign(s)
        copied.append(layer.name)
    if missing:
        raise ValueError(f"cannot copy {src.name!r} into {dst.name!r}: layers {missing} have no weights to copy; "
                         f"both models must come from the same NetworkConfig")
    return copied


def _belongs_to(layer_name, resolution):
    """True for layers introduced at `resolution` (`g_block_32_conv0`, `d_fromrgb_32`)."""
    return f"_{resolution}_" in layer_name or layer_name.endswith(f"_{resolution}")
