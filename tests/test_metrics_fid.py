"""FID: statistics, matrix square root, closed forms, the pluggable extractor and the Inception path."""
import numpy as np
import pytest
import scipy.linalg

from progan_tf.data.synthetic import synthetic_images
from progan_tf.errors import ConfigError
from progan_tf.metrics import fid


def _pooled_pixels(images):
    """Stand-in feature extractor: 8x8 average-pooled pixels, [N, R/8 * R/8 * C] floats."""
    n, r, _, c = images.shape
    return images.astype(np.float64).reshape(n, r // 8, 8, r // 8, 8, c).mean(axis=(2, 4)).reshape(n, -1)


def _flatten(samples):
    """Stand-in extractor for samples already in feature space, shaped as images [N, 1, 1, D]."""
    return samples.reshape(len(samples), -1)


def _fid(a, b, feature_fn, batch=100):
    stats = []
    for images in (a, b):
        acc = fid.FIDAccumulator(feature_fn)
        for start in range(0, len(images), batch):
            acc.update(images[start:start + batch])
        stats.append(acc.mean_and_covariance())
    return fid.frechet_distance(*stats[0], *stats[1])


def _random_covariance(rng, dim):
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.1 * np.eye(dim)


def test_streamed_statistics_equal_numpy():
    rng = np.random.default_rng(0)
    features = rng.normal(1000.0, 0.5, (300, 6)) @ rng.normal(size=(6, 6))  # large mean, small spread
    stats = fid.FeatureStatistics()
    for start in range(0, 300, 64):
        stats.update(features[start:start + 64])
    mean, cov = stats.mean_and_covariance()
    np.testing.assert_allclose(mean, features.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        fid.FeatureStatistics().mean_and_covariance()


def test_trace_sqrt_product_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a, b = _random_covariance(rng, 20), _random_covariance(rng, 20)
    expected = np.trace(scipy.linalg.sqrtm(a @ b)).real
    assert fid.trace_sqrt_product(a, b) == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_give_a_finite_real_distance():
    # 10 samples in 32 dimensions: rank-9 covariances, where sqrtm of the product is unstable.
    features = np.random.default_rng(0).normal(size=(10, 1, 1, 32))
    value = _fid(features, features, _flatten)
    assert np.isfinite(value) and abs(value) < 1e-5  # tr(S) is ~30: rounding in the null space


def test_closed_form_for_known_gaussians():
    # Commuting (diagonal) covariances: FID = |m|^2 + sum (sqrt(a) - sqrt(b))^2.
    a, b = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    m = np.array([1.0, -2.0, 0.5])
    assert fid.frechet_distance(np.zeros(3), a, m, b) == pytest.approx(5.25 + 1.0 + 0.0 + 4.0)


def test_fid_of_a_set_with_itself_is_zero_and_halves_are_close():
    images, _ = synthetic_images(400, 32, seed=0)
    assert abs(_fid(images, images, _pooled_pixels)) < 1e-6
    halves = _fid(images[:200], images[200:], _pooled_pixels)
    noise = np.random.default_rng(0).integers(0, 256, images[200:].shape, dtype=np.uint8)
    assert halves < 0.1 * _fid(images[:200], noise, _pooled_pixels)


def test_shifted_images_match_the_closed_form_exactly():
    # Shifting every image by a constant moves the mean only: FID = |shift|^2 per feature.
    images, _ = synthetic_images(200, 32, seed=0)
    brighter = images.astype(np.int16) + 10  # unclipped; the stand-in takes any numeric array
    assert _fid(images, brighter, _pooled_pixels) == pytest.approx(16 * 3 * 10.0**2, rel=1e-6)


def test_sampled_shifted_gaussian_matches_the_closed_form():
    rng = np.random.default_rng(0)
    dim, count = 8, 40_000
    sigma_a, sigma_b = _random_covariance(rng, dim), _random_covariance(rng, dim)
    shift = rng.normal(size=dim)
    a = rng.multivariate_normal(np.zeros(dim), sigma_a, count)
    b = rng.multivariate_normal(shift, sigma_b, count)
    root = scipy.linalg.sqrtm(sigma_a)
    closed = shift @ shift + np.trace(sigma_a + sigma_b - 2.0 * scipy.linalg.sqrtm(root @ sigma_b @ root).real)
    estimate = _fid(a.reshape(count, 1, 1, dim), b.reshape(count, 1, 1, dim), _flatten, batch=5000)
    assert estimate == pytest.approx(closed, rel=0.02), (estimate, closed)


def test_missing_inception_weights_name_the_file_and_the_way_to_get_it(tmp_path):
    with pytest.raises(ConfigError) as error:
        fid.inception_feature_extractor(str(tmp_path / "missing.h5"))
    message = str(error.value)  # a library caller reads the option's name, progan-eval its flag
    assert "missing.h5" in message and fid.INCEPTION_WEIGHTS_FILE in message
    assert fid.INCEPTION_WEIGHTS_URL in message and message.endswith("pass its path with inception_weights")
    assert error.value.message(lambda field: f"--{field}").endswith("pass its path with --inception_weights")


def test_inception_extractor_loads_a_local_h5_and_gives_pool_features(tmp_path):
    import h5py
    import keras
    import tensorflow as tf
    from keras.src.legacy.saving import legacy_h5_format

    # Random weights in the Keras-2 h5 layout of the real file: exercises the same loader.
    reference = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                               input_shape=(299, 299, 3))
    path = str(tmp_path / fid.INCEPTION_WEIGHTS_FILE)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    extract = fid.inception_feature_extractor(path, batch_size=2)
    grey = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    features = extract(grey)
    rgb = tf.image.resize(np.repeat(grey, 3, axis=-1).astype(np.float32), [299, 299])
    assert features.shape == (3, 2048)
    np.testing.assert_allclose(features, reference(rgb / 127.5 - 1.0).numpy(), atol=1e-4)
