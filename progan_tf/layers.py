"""The paper's layers, one small Keras class per idea.

Equalised learning rate (paper §4.1): kernels are stored N(0, 1) and scaled at run
time by gain / sqrt(fan_in), so every weight learns at the same speed under Adam.
The scale multiplies the kernel (a few thousand numbers), not the activations.
Normalisation statistics (PixelNorm, MinibatchStdDev) are computed in float32 even
under a mixed-precision policy.
"""
import math

import keras
import numpy as np
import tensorflow as tf

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
    """Conv2D ('same' padding, stride 1) with the equalised-learning-rate weight scale.

    Args:
      filters: output channels.
      kernel_size: square kernel side (3 for blocks, 1 for toRGB/fromRGB).
      gain: He gain; sqrt(2) before LeakyReLU, 1 for linear outputs (toRGB).
      use_bias: add a per-channel bias (initialised 0, not scaled).
      use_wscale: the equalised learning rate (paper §4.1). False is the ablation "no wscale":
        He initialisation N(0, gain^2 / fan_in) and no run-time scale.
      upsample: if True (3x3 only), compute conv3x3(nearest-upsample-x2(x)) as one
        stride-2 transposed convolution with a 4x4 kernel summed from the 3x3 one
        (`upsample_conv_kernel`): the same function and the same weights, with 16
        instead of 36 multiply-adds per input pixel and channel pair and no
        upsampled tensor. The official code's "fused scale".
    """

    def __init__(self, filters, kernel_size=3, gain=SQRT2, use_bias=True, upsample=False, use_wscale=True,
                 **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("filters", filters)
        _check_positive_int("kernel_size", kernel_size)
        if upsample and kernel_size != 3:
            raise ValueError(f"upsample=True needs kernel_size 3, got {kernel_size}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.gain = float(gain)
        self.use_bias = use_bias
        self.upsample = bool(upsample)
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
        else:
            y = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")  # [N, H, W, filters]
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, self.compute_dtype))
        return y

    def compute_output_shape(self, input_shape):
        n, h, w = input_shape[:3]
        if self.upsample:
            h, w = (None if h is None else 2 * h), (None if w is None else 2 * w)
        return (n, h, w, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "gain": self.gain, "use_bias": self.use_bias, "upsample": self.upsample,
                "use_wscale": self.use_wscale}


# Row a: the 3x3 taps (w0, w1, w2) summed into tap a of the 1-D transposed kernel [w2, w1+w2, w0+w1, w0].
_UPSAMPLE_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)  # [4, 3]


def upsample_conv_kernel(kernel):
    """The 4x4 conv2d_transpose kernel [4, 4, out, in] of conv3x3(upsample2x(x), kernel).

    Output pixel 2i+a of the upsampled conv reads input pixels i-1, i (a=0) or i, i+1
    (a=1) with the 3x3 taps summed per source pixel: in 1-D, [w2, w1+w2, w0+w1, w0]
    in conv2d_transpose's (unflipped) order. Zero padding at the high resolution is
    zero padding at the low one, so the borders agree too.

    Both dimensions at once are one matmul with the Kronecker product of that 1-D
    tap matrix with itself. Its gradient is a matmul too; reversing and slicing the
    kernel cost a slow StridedSliceGrad per slice (speed-up 7, benchmarks/RESULTS.md).

    Args:
      kernel: [3, 3, in, out], already weight-scaled.
    """
    taps = tf.constant(np.kron(_UPSAMPLE_TAPS, _UPSAMPLE_TAPS), kernel.dtype)  # [16, 9]
    k = tf.matmul(taps, tf.reshape(kernel, [9, -1]))  # [16, in * out]
    k = tf.reshape(k, [4, 4, kernel.shape[2], kernel.shape[3]])  # [4, 4, in, out]
    return tf.transpose(k, [0, 1, 3, 2])


@keras.saving.register_keras_serializable(package="progan")
class WeightScaledDense(keras.layers.Layer):
    """Dense layer with the equalised-learning-rate weight scale.

    Args:
      units: output features.
      gain: He gain (sqrt(2); 1 for the critic's score; sqrt(2)/4 for G's first layer).
      use_bias: add a bias (initialised 0, not scaled).
      target_shape: if given, reshape the output to [N, *target_shape] before the
        bias, which is then per channel (the last axis): G's latent -> 4x4xnf layer.
      use_wscale: as for WeightScaledConv2D.
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


def leaky_relu(x, negative_slope=0.2):
    """max(x, slope * x) whose gradient reads the output y instead of the input x.

    For slope > 0, y > 0 exactly where x > 0, so the gradient is the same bits as
    tf.nn.leaky_relu's. Not needing x lets Grappler fuse conv + bias + LeakyReLU
    into one oneDNN call (tf.nn.leaky_relu's gradient keeps the pre-activation
    alive, which blocks that fusion). The gradient is itself differentiable (the
    gradient penalty differentiates through it again).
    """
    @tf.custom_gradient
    def forward(x):
        y = tf.nn.leaky_relu(x, negative_slope)

        def grad(dy):
            # y only selects the slope: its own derivative is zero, and stopping it keeps a
            # second-order gradient (the penalty's) from differentiating the forward
            # LeakyRelu op as well, which would read x again and cost a pass over zeros.
            return tf.raw_ops.LeakyReluGrad(gradients=dy, features=tf.stop_gradient(y), alpha=negative_slope)

        return y, grad

    return forward(x)


@keras.saving.register_keras_serializable(package="progan")
class LeakyReLU(keras.layers.Layer):
    """LeakyReLU with the output-side gradient of `leaky_relu`.

    Args:
      negative_slope: slope for x < 0 (0.2 in the paper); must be > 0.
    """

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        if not float(negative_slope) > 0.0:
            raise ValueError(f"negative_slope must be > 0, got {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, x):
        return leaky_relu(x, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="progan")
class PixelNorm(keras.layers.Layer):
    """Pixelwise feature-vector normalisation: x / sqrt(mean(x^2 over channels) + epsilon).

    Args:
      epsilon: added under the square root (1e-8 in the paper).
    """

    def __init__(self, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        y = x32 * tf.math.rsqrt(tf.reduce_mean(tf.square(x32), axis=-1, keepdims=True) + self.epsilon)
        return tf.cast(y, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="progan")
class MinibatchStdDev(keras.layers.Layer):
    """Appends one feature map: the average standard deviation within each minibatch group.

    The batch is split into groups of min(group_size, N) consecutive samples (the
    official code interleaves them instead; for a shuffled batch that is the same
    statistic, and consecutive groups make the result independent of how a global
    batch is split across replicas). For each group the std over its members is
    taken per feature and pixel, averaged to one scalar, and broadcast as an extra
    channel to that group's members.

    Args:
      group_size: group size (4 in the paper); must divide the per-replica batch
        when the batch is larger than it.
      epsilon: added under the square root.
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
                                  f"group size {self.group_size}; change the batch size or --mbstd_group_size")
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

    `alpha` is a non-trainable float32 variable (saved in checkpoints) that the
    trainer assigns as images are seen: 0 is the old network, 1 the new one.

    Args:
      alpha: initial alpha in [0, 1].
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
    """Shared shape of Upsample2D / Downsample2D: an integer factor and a resampling op."""

    def __init__(self, factor=2, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("factor", factor)
        self.factor = factor

    def _size(self, size):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        return (n, None if h is None else self._size(h), None if w is None else self._size(w), c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="progan")
class Upsample2D(_Resample2D):
    """Nearest-neighbour upsampling by an integer factor.

    Args:
      factor: scale factor (2 between stages).
    """

    def call(self, x):
        return upsample(x, self.factor)

    def _size(self, size):
        return size * self.factor


@keras.saving.register_keras_serializable(package="progan")
class Downsample2D(_Resample2D):
    """Box-filter (average-pool) downsampling by an integer factor.

    Args:
      factor: scale factor (2 between stages).
    """

    def call(self, x):
        return downsample(x, self.factor)

    def _size(self, size):
        return size // self.factor


def upsample(x, factor=2):
    """Nearest-neighbour upsampling of [N, H, W, C] by `factor`.

    The gradient sums each factor x factor block with one pooling op (factor^2 x the
    block average) instead of Tile's gradient, a reduction over a 6-D reshape.
    """
    if factor == 1:
        return x

    @tf.custom_gradient
    def forward(x):
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        y = tf.tile(tf.reshape(x, [n, h, 1, w, 1, c]), [1, 1, factor, 1, factor, 1])  # [N, H, f, W, f, C]

        def grad(dy):
            return tf.nn.avg_pool2d(dy, ksize=factor, strides=factor, padding="VALID") * float(factor * factor)

        return tf.reshape(y, [n, h * factor, w * factor, c]), grad

    return forward(x)


def downsample(x, factor=2):
    """Average pooling of [N, H, W, C] over factor x factor blocks."""
    if factor == 1:
        return x
    return tf.nn.avg_pool2d(x, ksize=factor, strides=factor, padding="VALID")


def fade_reals(reals, alpha):
    """Blur real images the way the generator's output is faded in (paper §A.1).

    Args:
      reals: [N, R, R, C] images at the current resolution.
      alpha: fade-in progress in [0, 1] (scalar).

    Returns:
      lerp(upsample(downsample(reals)), reals, alpha), so the critic never sees
      sharper real images than the generator can make.
    """
    low = upsample(downsample(reals))
    alpha = tf.cast(alpha, reals.dtype)
    return low * (1.0 - alpha) + reals * alpha
