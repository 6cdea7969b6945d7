"""The functions the layers are made of, each with the gradient that keeps the step fast.

Plain TensorFlow functions (no weights): LeakyReLU with an output-side gradient, nearest upsampling with a pooled
gradient, average-pool downsampling, the 4x4 kernels of the fused upsample + conv and conv + downsample, and the fade
of the real images (paper §A.1).
"""
import numpy as np
import tensorflow as tf


def leaky_relu(x, negative_slope=0.2):
    """max(x, slope * x) whose gradient reads the output y instead of the input x.

    For slope > 0, y > 0 exactly where x > 0, so the gradient is the same bits as tf.nn.leaky_relu's. Not needing x
    lets Grappler fuse conv + bias + LeakyReLU into one oneDNN call (tf.nn.leaky_relu's gradient keeps the
    pre-activation alive, which blocks that fusion). The gradient is itself differentiable (the gradient penalty
    differentiates through it again).
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


# Row a: the 3x3 taps (w0, w1, w2) summed into tap a of the 1-D transposed kernel [w2, w1+w2, w0+w1, w0].
_UPSAMPLE_TAPS = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], np.float32)  # [4, 3]


def upsample_conv_kernel(kernel):
    """kernel [3, 3, in, out] (already weight-scaled) -> the 4x4 conv2d_transpose kernel [4, 4, out, in] of
    conv3x3(upsample2x(x), kernel).

    Output pixel 2i+a of the upsampled conv reads input pixels i-1, i (a=0) or i, i+1 (a=1) with the 3x3 taps summed
    per source pixel: in 1-D, [w2, w1+w2, w0+w1, w0] in conv2d_transpose's (unflipped) order. Zero padding at the high
    resolution is zero padding at the low one, so the borders agree too. Both dimensions at once are one matmul with
    the Kronecker product of that 1-D tap matrix with itself; its gradient is a matmul too, where reversing and
    slicing the kernel would cost a slow StridedSliceGrad per slice.
    """
    taps = tf.constant(np.kron(_UPSAMPLE_TAPS, _UPSAMPLE_TAPS), kernel.dtype)  # [16, 9]
    k = tf.matmul(taps, tf.reshape(kernel, [9, -1]))  # [16, in * out]
    k = tf.reshape(k, [4, 4, kernel.shape[2], kernel.shape[3]])  # [4, 4, in, out]
    return tf.transpose(k, [0, 1, 3, 2])


# Row a: the 3x3 taps (w0, w1, w2) summed into tap a of the 1-D stride-2 kernel [w0, w0+w1, w1+w2, w2] / 2.
_DOWNSAMPLE_TAPS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1]], np.float32) * 0.5  # [4, 3]


def downsample_conv_kernel(kernel):
    """kernel [3, 3, in, out] (already weight-scaled) -> the 4x4 stride-2 conv2d kernel [4, 4, in, out] of
    avgpool2x2(conv3x3(x, kernel)).

    Output pixel i of the pooled conv averages conv pixels 2i and 2i+1, which read input pixels 2i-1 .. 2i+2: in 1-D
    the taps [w0, w0+w1, w1+w2, w2] / 2, the official code's `conv2d_downscale2d` (the 3x3 kernel zero-padded to 5x5
    and its four 4x4 shifts averaged). 'SAME' padding of a 4x4 stride-2 conv over an even size pads one row on each
    side, as the 3x3 conv's 'SAME' does, so the borders agree too. One matmul with a Kronecker product, as in
    `upsample_conv_kernel`.
    """
    taps = tf.constant(np.kron(_DOWNSAMPLE_TAPS, _DOWNSAMPLE_TAPS), kernel.dtype)  # [16, 9]
    k = tf.matmul(taps, tf.reshape(kernel, [9, -1]))  # [16, in * out]
    return tf.reshape(k, [4, 4, kernel.shape[2], kernel.shape[3]])


def upsample(x, factor=2):
    """Nearest-neighbour upsampling, [N, H, W, C] -> [N, factor*H, factor*W, C].

    The gradient sums each factor x factor block with one pooling op (factor^2 x the block average) instead of Tile's
    gradient, a reduction over a 6-D reshape.
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
    """Blur real images [N, R, R, C] the way the generator's output is faded in (paper §A.1); scalar alpha in [0, 1].

    Returns lerp(upsample(downsample(reals)), reals, alpha), so the critic never sees sharper real images than the
    generator can make.
    """
    low = upsample(downsample(reals))
    alpha = tf.cast(alpha, reals.dtype)
    return low * (1.0 - alpha) + reals * alpha
