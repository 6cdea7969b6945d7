"""Fréchet Inception distance (Heusel et al. 2017) with a pluggable feature extractor: Inception-v3's pool features
from the Keras ImageNet weights in a local file (never downloaded), or any callable uint8 images -> [N, D]. Not the
TF1 graph behind published FIDs, so compare our values with each other only (docs/METRICS.md).
"""
import os

import numpy as np
import tensorflow as tf

from progan_tf.errors import ConfigError

INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                         + INCEPTION_WEIGHTS_FILE)
INCEPTION_RESOLUTION = 299  # Inception-v3's native input size


def check_inception_weights(path):
    """Raise a ConfigError (naming the option `inception_weights`) that says how to get the Keras InceptionV3 "notop"
    weights if `path` is missing."""
    if not path or not os.path.isfile(path):
        raise ConfigError(
            "FID needs the Inception-v3 weights file {file} and {inception_weights}={path!r} does not exist. "
            "This machine does not download; fetch {url} where there is network access (or copy "
            "~/.keras/models/{file}, which keras.applications.InceptionV3(weights='imagenet', include_top=False) "
            "leaves there) and pass its path with {inception_weights}", file=INCEPTION_WEIGHTS_FILE, path=path,
            url=INCEPTION_WEIGHTS_URL)


def inception_feature_extractor(weights_path, batch_size=50):
    """A function uint8 [N, H, W, C] (any size, 1 or 3 channels) -> Inception-v3 pool features float32
    [N, 2048], `batch_size` images at a time (a 299^2 batch of 50 is ~55 MB of input); ConfigError without the
    weights file."""
    import keras  # keras.applications is only needed here

    check_inception_weights(weights_path)
    model = keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=weights_path,
        input_shape=(INCEPTION_RESOLUTION, INCEPTION_RESOLUTION, 3))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def features(images):
        x = tf.cast(images, tf.float32)  # [n, H, W, 3] in [0, 255]
        x = tf.image.resize(x, [INCEPTION_RESOLUTION, INCEPTION_RESOLUTION], method="bilinear")  # [n, 299, 299, 3]
        return model(x / 127.5 - 1.0, training=False)  # [n, 2048]; Inception expects [-1, 1]

    def extract(images):
        if images.shape[-1] == 1:  # grey images: Inception wants RGB
            images = np.repeat(images, 3, axis=-1)
        return np.concatenate([features(images[i:i + batch_size]).numpy()
                               for i in range(0, len(images), batch_size)])
    return extract


class FeatureStatistics:
    """Running mean and covariance of feature vectors, in float64.

    Sums are taken about the first batch's mean, which keeps the covariance
    accurate when the features' mean is large next to their spread.
    """

    def __init__(self):
        self.count = 0
        self._shift = None
        self._sum = None
        self._outer = None

    def update(self, features):
        """Add features [N, D]."""
        x = np.asarray(features, np.float64)
        if self._shift is None:
            self._shift = x.mean(axis=0)
            self._sum = np.zeros_like(self._shift)
            self._outer = np.zeros((x.shape[1], x.shape[1]))
        x = x - self._shift  # [N, D]
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x  # [D, D]
        self.count += len(x)

    def mean_and_covariance(self):
        """(mean float64 [D], unbiased covariance float64 [D, D]) of everything so far."""
        if self.count < 2:
            raise ValueError(f"feature statistics need at least 2 samples, got {self.count}")
        centred_mean = self._sum / self.count
        covariance = (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)
        return self._shift + centred_mean, covariance


class FIDAccumulator:
    """Streams batches of images into the statistics of `feature_fn(uint8 images [N, H, W, C]) -> [N, D]`."""

    def __init__(self, feature_fn):
        self.feature_fn = feature_fn
        self.statistics = FeatureStatistics()

    def update(self, images):
        """Add a batch of uint8 images [N, H, W, C]."""
        self.statistics.update(self.feature_fn(images))

    def mean_and_covariance(self):
        return self.statistics.mean_and_covariance()


def _sqrt_psd(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def trace_sqrt_product(sigma_a, sigma_b):
    """tr((S_a S_b)^(1/2)) for covariance matrices, as a float.

    S_a S_b is not symmetric, so scipy.linalg.sqrtm of it can return small imaginary parts and fails on singular
    covariances (fewer samples than dimensions). Its eigenvalues are those of the symmetric PSD matrix
    S_a^(1/2) S_b S_a^(1/2), whose square root is real, so we take that route."""
    root_a = _sqrt_psd(sigma_a)
    eigenvalues = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
    return float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))


def frechet_distance(mean_a, sigma_a, mean_b, sigma_b):
    """Fréchet distance (float >= 0 up to rounding) between N(mean_a, sigma_a) and N(mean_b, sigma_b)."""
    diff = np.asarray(mean_a, np.float64) - np.asarray(mean_b, np.float64)
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b)
                 - 2.0 * trace_sqrt_product(sigma_a, sigma_b))
