"""The Laplacian pyramid of SWD (metrics/swd.py), as the official code builds it with cv2.pyrDown/pyrUp:
the 5x5 binomial filter and mirror ("reflect without repeating the edge") borders."""
import numpy as np
import tensorflow as tf

# 5x5 binomial filter of cv2.pyrDown (the outer product of [1, 4, 6, 4, 1] / 16).
_BINOMIAL = np.float32([1, 4, 6, 4, 1]) / 16.0
GAUSSIAN_FILTER = np.outer(_BINOMIAL, _BINOMIAL)  # [5, 5]


def _filter(images, kernel, stride):
    """Depthwise 5x5 convolution with mirror borders, as scipy.ndimage.convolve(mode="mirror")."""
    channels = images.shape[-1]
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")  # [N, H+4, W+4, C]
    kernel = tf.tile(tf.constant(kernel)[:, :, None, None], [1, 1, channels, 1])  # [5, 5, C, 1]
    return tf.nn.depthwise_conv2d(padded, kernel, [1, stride, stride, 1], "VALID")


def pyr_down(images):
    """float32 [N, H, W, C] -> [N, H/2, W/2, C]: blur and keep the even pixels (cv2.pyrDown)."""
    return _filter(images, GAUSSIAN_FILTER, stride=2)


def pyr_up(images):
    """float32 [N, H, W, C] -> [N, 2H, 2W, C]: insert zeros between pixels and blur with 4x the filter (cv2.pyrUp)."""
    n, h, w, c = tf.unstack(tf.shape(images))
    zeros = tf.zeros_like(images)
    rows = tf.reshape(tf.stack([images, zeros], axis=2), [n, 2 * h, w, c])  # odd rows zero
    sparse = tf.reshape(tf.stack([rows, tf.zeros_like(rows)], axis=3), [n, 2 * h, 2 * w, c])  # [N, 2H, 2W, C]
    return _filter(sparse, GAUSSIAN_FILTER * 4.0, stride=1)


def laplacian_pyramid(images, num_levels):
    """float32 [N, R, R, C] -> `num_levels` band-pass residuals [N, R / 2**i, R / 2**i, C], finest first,
    the last the low-pass image (1 level: the image itself)."""
    pyramid = [images]
    for _ in range(1, num_levels):
        low = pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyr_up(low)
        pyramid.append(low)
    return pyramid


def reconstruct_laplacian_pyramid(pyramid):
    """Invert `laplacian_pyramid`: the images it was built from."""
    images = pyramid[-1]
    for residual in pyramid[-2::-1]:
        images = pyr_up(images) + residual
    return images
