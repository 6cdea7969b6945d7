"""evaluate_generator with stand-in generators, and the real-statistics cache."""
import numpy as np
import pytest
import scipy.ndimage

from progan_tf.data.synthetic import synthetic_images
from progan_tf.metrics import evaluate

RESOLUTION = 32
NUM_IMAGES = 128


def _pooled_pixels(images):
    """Stand-in FID feature extractor: 8x8 average-pooled pixels."""
    n, r, _, c = images.shape
    return images.astype(np.float64).reshape(n, r // 8, 8, r // 8, 8, c).mean(axis=(2, 4)).reshape(n, -1)


def _replaying_generator(images):
    """A stand-in generator latents -> images in [-1, 1] that replays `images` (uint8) in order."""
    stream = iter(images)

    def generate(latents):
        return np.stack([next(stream) for _ in latents]).astype(np.float32) / 127.5 - 1.0
    return generate


def _batches(images, size=50):
    return (images[i:i + size] for i in range(0, len(images), size))


def _unreadable():
    raise AssertionError("the reals were read although everything is cached")
    yield  # pragma: no cover - makes this a generator


@pytest.fixture(scope="module")
def images():
    """Reals, and as many disjoint images of the same set for a 'perfect' generator."""
    pool, _ = synthetic_images(2 * NUM_IMAGES, RESOLUTION, seed=0)
    return pool[:NUM_IMAGES], pool[NUM_IMAGES:]


def test_a_better_generator_scores_better_and_reals_are_cached(tmp_path, images):
    reals, others = images
    # A worse generator: blurry, and with hues rotated half-way (channels mixed).
    blurred = scipy.ndimage.gaussian_filter(others.astype(np.float32), (0, 1.5, 1.5, 0))
    blurred = np.rint(0.5 * blurred + 0.5 * blurred[..., [1, 2, 0]]).astype(np.uint8)
    kwargs = dict(metrics=["swd", "msssim", "fid"], num_images=NUM_IMAGES, resolution=RESOLUTION, latent_size=8,
                  batch_size=32, cache_dir=str(tmp_path), feature_fn=_pooled_pixels, feature_name="pooled")
    good = evaluate.evaluate_generator(_replaying_generator(others), _batches(reals), **kwargs)
    # Second run: every real statistic comes from the cache.
    bad = evaluate.evaluate_generator(_replaying_generator(blurred), _unreadable(), **kwargs)
    assert set(good) == {"SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg", "MSSSIM", "MSSSIM_reals", "FID",
                         "num_images", "resolution", "seconds"}
    assert good["SWDx1e3_avg"] < bad["SWDx1e3_avg"]
    assert good["FID"] < bad["FID"]
    assert good["MSSSIM_reals"] == bad["MSSSIM_reals"]
    assert bad["MSSSIM"] > good["MSSSIM"]  # blurred images look more alike
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "reals_32px_128img_seed0_fid_pooled.npz", "reals_32px_128img_seed0_msssim.json", "reals_32px_128img_seed0_swd"]


def test_without_cache_the_result_matches_the_cached_one(tmp_path, images):
    reals, others = images
    kwargs = dict(metrics=["swd"], num_images=NUM_IMAGES, resolution=RESOLUTION, latent_size=8, seed=3)
    in_memory = evaluate.evaluate_generator(_replaying_generator(others), _batches(reals), **kwargs)
    on_disk = evaluate.evaluate_generator(_replaying_generator(others), _batches(reals), cache_dir=str(tmp_path),
                                          **kwargs)
    assert in_memory["SWDx1e3_avg"] == on_disk["SWDx1e3_avg"]


def test_bad_requests_are_explained(images):
    reals, others = images
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate.evaluate_generator(_replaying_generator(others), _batches(reals), ["swd", "is"], 8, 32, 8)
    with pytest.raises(ValueError, match="feature extractor"):
        evaluate.evaluate_generator(_replaying_generator(others), _batches(reals), ["fid"], 8, 32, 8)
    with pytest.raises(ValueError, match="ran out after 10 of 20"):
        evaluate.evaluate_generator(_replaying_generator(others), _batches(reals[:10]), ["swd"], 20, 32, 8)


def test_generated_batches_are_uint8_and_seeded():
    def generate(latents):
        return np.tanh(latents[:, :1, None, None] * np.ones((1, 4, 4, 3)))  # [n, 4, 4, 3] in [-1, 1]
    first = np.concatenate(list(evaluate.generated_batches(generate, 10, 4, batch_size=4, seed=1)))
    again = np.concatenate(list(evaluate.generated_batches(generate, 10, 4, batch_size=3, seed=1)))
    assert first.dtype == np.uint8 and first.shape == (10, 4, 4, 3)
    np.testing.assert_array_equal(first, again)
