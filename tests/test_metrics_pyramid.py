"""The Gaussian and Laplacian pyramids of SWD (progan_tf/metrics/pyramid.py) against the official scipy filters."""
import numpy as np
import scipy.ndimage

from metric_images import dataset, quantise  # noqa: F401 (dataset: a fixture)
from progan_tf.metrics import pyramid


# --- slow reference: the official metrics/sliced_wasserstein.py, NCHW numpy --------------

def _ref_pyr_down(minibatch):
    return scipy.ndimage.convolve(minibatch, pyramid.GAUSSIAN_FILTER[None, None], mode="mirror")[:, :, ::2, ::2]


def _ref_pyr_up(minibatch):
    n, c, h, w = minibatch.shape
    res = np.zeros((n, c, h * 2, w * 2), minibatch.dtype)
    res[:, :, ::2, ::2] = minibatch
    return scipy.ndimage.convolve(res, pyramid.GAUSSIAN_FILTER[None, None] * 4.0, mode="mirror")


def test_pyr_down_and_up_match_the_official_scipy_filters():
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    nchw = images.transpose(0, 3, 1, 2)
    down = pyramid.pyr_down(images).numpy()
    up = pyramid.pyr_up(images).numpy()
    np.testing.assert_allclose(down, _ref_pyr_down(nchw).transpose(0, 2, 3, 1), atol=1e-3)
    np.testing.assert_allclose(up, _ref_pyr_up(nchw).transpose(0, 2, 3, 1), atol=1e-3)


def test_laplacian_pyramid_reconstructs_exactly(dataset):
    images = dataset[0][:16].astype(np.float32)
    levels = pyramid.laplacian_pyramid(images, 3)
    assert [level.shape[1] for level in levels] == [64, 32, 16]
    # The band-pass levels carry detail only: they are near zero mean, the low-pass is not.
    assert abs(float(np.mean(levels[0]))) < 1.0 < float(np.mean(levels[-1]))
    restored = pyramid.reconstruct_laplacian_pyramid(levels).numpy()
    assert np.max(np.abs(restored - images)) < 1e-3  # float32 rounding on [0, 255] values
    assert np.array_equal(quantise(restored), dataset[0][:16])
