"""The paper's layers, one small Keras class per idea.

Equalised learning rate (paper §4.1): kernels are stored N(0, 1) and scaled at run time by gain / sqrt(fan_in), so
every weight learns at the same speed under Adam; the scale multiplies the kernel (a few thousand numbers), not the
activations. PixelNorm and MinibatchStdDev compute their statistics in float32 even under a mixed-precision policy.
"""
import math

import keras
import tensorflow as tf

from progan_tf.ops import downsample, downsample_conv_kernel, leaky_relu, upsample, upsample_conv_kernel

SQRT2 = math.sqrt(2.0)


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _wscale(gain, fan_in, use_wscale):
    """(run-time scale, initial std): (gain / sqrt(fan_in), 1) with wscale, (1, gain / sqrt(fan_in)) without."""
    he_std = gain / math.sqrt(fan_in)
    return (he_std, 1.0) if use_wscale else (1.0, he_std)


@keras.saving.register_keras_serializable(package="progan")
class WeightScaledConv2D(keras.layers.Layer):
    """Conv2D ('same' padding, stride 1) with equalised-learning-rate weight scale: [N, H, W, C] -> [N, H, W, filters].

    kernel_size is 3 for blocks, 1 for toRGB/fromRGB; gain is sqrt(2) before LeakyReLU, 1 for linear outputs (toRGB).
    The per-channel bias is initialised 0 and not scaled. use_wscale=False is the ablation "no wscale" (paper §4.1):
    He initialisation N(0, gain^2 / fan_in) and no run-time scale.
    upsample (3x3 only): conv3x3(nearest-upsample-x2(x)) -> [N, 2H, 2W, filters] as one stride-2 transposed convolution
    with a 4x4 kernel summed from the 3x3 one (`upsample_conv_kernel`): the same function and weights, 16 instead of
    36 multiply-adds per input pixel and channel pair, no upsampled tensor (the official code's "fused scale").
    downsample (3x3 only): avgpool2x2(conv3x3(x)) + bias -> [N, H/2, W/2, filters] as one stride-2 convolution with a
    4x4 kernel averaged from the 3x3 one (`downsample_conv_kernel`): the official discriminator's fused scale, 16
    instead of 36 multiply-adds per output pixel and channel pair. Followed by the activation, this is not the unfused
    block (activation, then pooling) but a slightly different function of the same weights.
    """

    def __init__(self, filters, kernel_size=3, gain=SQRT2, use_bias=True, upsample=False, use_wscale=True,
                 downsample=False, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("filters", filters)
        _check_positive_int("kernel_size", kernel_size)
        for name, value in (("upsample", upsample), ("downsample", downsample)):
            if value and kernel_size != 3:
                raise ValueError(f"{name}=True needs kernel_size 3, got {kernel_size}")
        if upsample and downsample:
            raise ValueError("a conv cannot both upsample and downsample")
        self.filters = filters
        self.kernel_size = kernel_size
        self.gain = float(gain)
        self.use_bias = use_bias
        self.upsample = bool(upsample)
        self.downsample = bool(downsample)
        self.use_wscale = bool(use_wscale)

    def build(self, input_shape):
        in_channels = int(input_shape[-1])
        self.scale, self.init_std = _wscale(self.gain, self.kernel_size * self.kernel_size * in_channels,
                                            self.use_wscale)
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
            initializer=keras.initializers.RandomNormal(0.0, self.init_std))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        kernel = tf.cast(self.kernel, self.compute_dtype) * tf.cast(self.scale, self.compute_dtype)
        if self.upsample:
            shape = tf.shape(x)
            y = tf.nn.conv2d_transpose(x, upsample_conv_kernel(kernel),
                                       tf.stack([shape[0], 2 * shape[1], 2 * shape[2], self.filters]),
                                       strides=2, padding="SAME")  # [N, 2H, 2W, filters]
        elif self.downsample:
            y = tf.nn.conv2d(x, downsample_conv_kernel(kernel), strides=2, padding="SAME")  # [N, H/2, W/2, filters]
        else:
            y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")  # [N, H, W, filters]
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, self.compute_dtype))
        return y

    def compute_output_shape(self, input_shape):
        n, h, w = input_shape[:3]
        if self.upsample:
            h, w = (None if h is None else 2 * h), (None if w is None else 2 * w)
        if self.downsample:
            h, w = (None if h is None else h // 2), (None if w is None else w // 2)
        return (n, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "gain": self.gain, "use_bias": self.use_bias, "upsample": self.upsample,
                "downsample": self.downsample, "use_wscale": self.use_wscale}


@keras.saving.register_keras_serializable(package="progan")
class WeightScaledDense(keras.layers.Layer):
    """Dense layer with the equalised-learning-rate weight scale: [N, ...] (flattened) -> [N, units].

    gain: sqrt(2); 1 for the critic's score; sqrt(2)/4 for G's first layer. The bias is initialised 0, not scaled.
    target_shape reshapes the output to [N, *target_shape] before the bias, which is then per channel (the last axis):
    G's latent -> 4x4xnf layer. use_wscale: as for WeightScaledConv2D.
    """

    def __init__(self, units, gain=SQRT2, use_bias=True, target_shape=None, use_wscale=True, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("units", units)
        if target_shape is not None:
            target_shape = tuple(int(d) for d in target_shape)
            if math.prod(target_shape) != units:
                raise ValueError(f"target_shape {target_shape} must hold exactly units={units} values")
        self.units = units
        self.gain = float(gain)
        self.use_bias = use_bias
        self.target_shape = target_shape
        self.use_wscale = bool(use_wscale)

    def build(self, input_shape):
        fan_in = int(math.prod(input_shape[1:]))
        self.scale, self.init_std = _wscale(self.gain, fan_in, self.use_wscale)
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(0.0, self.init_std))
        bias_size = self.target_shape[-1] if self.target_shape else self.units
        self.bias = self.add_weight(name="bias", shape=(bias_size,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        x = tf.reshape(x, [tf.shape(x)[0], -1])  # [N, fan_in]
        kernel = tf.cast(self.kernel, self.compute_dtype) * tf.cast(self.scale, self.compute_dtype)
        y = tf.matmul(x, kernel)  # [N, units]
        if self.target_shape:
            y = tf.reshape(y, [-1, *self.target_shape])  # [N, 4, 4, nf]
        if self.use_bias:
            y = y + tf.cast(self.bias, self.compute_dtype)
        return y

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + (self.target_shape or (self.units,))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "gain": self.gain, "use_bias": self.use_bias,
                "target_shape": list(self.target_shape) if self.target_shape else None,
                "use_wscale": self.use_wscale}


class _ElementWise(keras.layers.Layer):
    """A layer whose output has its input's shape."""

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="progan")
class LeakyReLU(_ElementWise):
    """LeakyReLU with the output-side gradient of `leaky_relu`; negative_slope (x < 0) must be > 0, 0.2 in the paper."""

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        if not float(negative_slope) > 0.0:
            raise ValueError(f"negative_slope must be > 0, got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, x):
        return leaky_relu(x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="progan")
class PixelNorm(_ElementWise):
    """Pixelwise feature-vector normalisation: x / sqrt(mean(x^2 over channels) + epsilon); 1e-8 in the paper."""

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        y = x32 * tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return tf.cast(y, x.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="progan")
class MinibatchStdDev(keras.layers.Layer):
    """[N, H, W, C] -> [N, H, W, C + 1]: appends the average standard deviation within each minibatch group.

    The batch is split into groups of min(group_size, N) consecutive samples; group_size (4 in the paper) must divide
    the per-replica batch when that is larger. The official code interleaves them instead; for a shuffled batch that
    is the same statistic, and consecutive groups make the result independent of how a global batch is split across
    replicas. Per group, the std over its members is taken per feature and pixel, averaged to one scalar, and broadcast
    as an extra channel to that group's members.
    """

    def __init__(self, group_size=4, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("group_size", group_size)
        self.group_size = group_size
        self.epsilon = float(epsilon)

    def call(self, x):
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        group = tf.minimum(self.group_size, n)
        tf.debugging.assert_equal(
            n % group, 0, message=f"MinibatchStdDev: the per-replica batch must be divisible by the "
                                  f"group size {self.group_size}; change the batch size or mbstd_group_size")
        y = tf.reshape(tf.cast(x, tf.float32), [-1, group, h, w, c])  # [M, G, H, W, C]
        y = y - tf.reduce_mean(y, axis=1, keepdims=True)
        y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=1) + self.epsilon)  # [M, H, W, C]
        y = tf.reduce_mean(y, axis=[1, 2, 3])  # [M]
        y = tf.repeat(y, group)  # [N]: each group's value for each of its members
        y = tf.tile(tf.reshape(y, [-1, 1, 1, 1]), [1, h, w, 1])  # [N, H, W, 1]
        return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)  # [N, H, W, C + 1]

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else input_shape[-1] + 1
        return tuple(input_shape[:-1]) + (channels,)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="progan")
class FadeIn(keras.layers.Layer):
    """lerp(old, new, alpha): blends the previous stage's path into the new one.

    `alpha` (initial value in [0, 1]) is a non-trainable float32 variable, saved in checkpoints, that the trainer
    assigns as images are seen: 0 is the old network, 1 the new one.
    """

    def __init__(self, alpha=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.initial_alpha = float(alpha)

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha", shape=(), initializer=keras.initializers.Constant(self.initial_alpha),
            trainable=False, dtype="float32")

    def call(self, inputs):
        old, new = inputs
        alpha = tf.cast(self.alpha, new.dtype)
        # This form (not old + (new - old) * alpha) is exactly `old` at 0 and exactly `new` at 1.
        return old * (1.0 - alpha) + new * alpha

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        # Export alpha's current value so a saved model reloads exactly as it computes.
        return {**super().get_config(), "alpha": float(self.alpha.numpy()) if self.built else self.initial_alpha}


class _Resample2D(keras.layers.Layer):
    """Upsample2D / Downsample2D: nearest-neighbour or box-filter resampling by an integer factor (2 between stages)."""

    upsampling = True

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("factor", factor)
        self.factor = factor

    def call(self, x):
        return (upsample if self.upsampling else downsample)(x, self.factor)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        size = (lambda s: s * self.factor) if self.upsampling else (lambda s: s // self.factor)
        return (n, None if h is None else size(h), None if w is None else size(w), c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="progan")
class Upsample2D(_Resample2D):
    """Nearest-neighbour upsampling by an integer factor."""


@keras.saving.register_keras_serializable(package="progan")
class Downsample2D(_Resample2D):
    """Box-filter (average-pool) downsampling by an integer factor."""

    upsampling = False
