"""Multi-scale sliced Wasserstein distance: levels, descriptors, distance, behaviour on real images."""
import numpy as np
import pytest
import scipy.ndimage

from metric_images import NUM_IMAGES, RESOLUTION, dataset, quantise  # noqa: F401 (dataset: a fixture)
from progan_tf.data.synthetic import synthetic_images
from progan_tf.metrics import swd


# --- slow reference: the official metrics/sliced_wasserstein.py, NCHW numpy --------------

def _ref_sliced_wasserstein(a, b, directions, num_channels):
    """finalize_descriptors + sliced_wasserstein of the official code, directions given."""
    def finalize(desc):
        desc = desc.reshape(len(desc), -1, num_channels).astype(np.float64)
        desc = (desc - desc.mean(axis=(0, 1))) / desc.std(axis=(0, 1))
        return desc.reshape(len(desc), -1)
    a, b = finalize(a), finalize(b)
    return np.mean([np.mean(np.abs(np.sort(a @ d, axis=0) - np.sort(b @ d, axis=0))) for d in directions])


# --- helpers --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def described(dataset):
    """Descriptors of both halves and of as many uniform-noise images."""
    noise = np.random.default_rng(1).integers(0, 256, dataset[1].shape, dtype=np.uint8)
    return _describe(dataset[0]), _describe(dataset[1]), _describe(noise)


@pytest.fixture(scope="module")
def baseline(described):
    """SWD (average) of the first half against the second half and against noise images."""
    real, other, noise = described
    return tuple(swd.swd_from_descriptors(real, d, RESOLUTION)["SWDx1e3_avg"] for d in (other, noise))


def _describe(images, seed=1):
    acc = swd.SWDAccumulator(images.shape[1], images.shape[3], seed=seed)
    for start in range(0, len(images), 64):
        acc.update(images[start:start + 64])
    return acc.descriptors()


def _blur(images, sigma, rng):
    return quantise(scipy.ndimage.gaussian_filter(images.astype(np.float32), (0, sigma, sigma, 0)))


def _noise(images, std, rng):
    return quantise(images + rng.normal(0.0, std, images.shape))


def _colour_shift(images, amount, rng):
    # Mix each channel towards the next one: a hue rotation with desaturation. A
    # per-channel offset or gain would not do, SWD normalises each channel away.
    f = images.astype(np.float32)
    return quantise((1.0 - amount) * f + amount * f[..., [1, 2, 0]])


# --- levels ----------------------------------------------------------------------------

def test_levels_and_neighbourhoods():
    assert swd.pyramid_resolutions(1024) == [1024, 512, 256, 128, 64, 32, 16]
    assert swd.pyramid_resolutions(16) == [16]
    assert swd.pyramid_resolutions(8) == [8]
    assert [swd.neighbourhood_size(r) for r in (4, 8, 16, 1024)] == [3, 7, 7, 7]
    assert swd.metric_names(32) == ["SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"]


def test_descriptors_are_the_neighbourhoods():
    level = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    centres = np.int32([[[3, 3], [12, 5]], [[8, 12], [3, 12]]])  # [N=2, K=2, (row, col)]
    desc = swd.extract_descriptors(level, centres, 7).numpy()
    expected = [level[n, r - 3:r + 4, c - 3:c + 4].reshape(-1) for n in range(2) for r, c in centres[n]]
    np.testing.assert_array_equal(desc, np.stack(expected))


def test_accumulator_validates_input_and_keeps_only_descriptors():
    acc = swd.SWDAccumulator(32, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        acc.update(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="no images"):
        acc.descriptors()
    acc.update(np.zeros((3, 32, 32, 3), np.uint8))
    acc.update(np.zeros((2, 32, 32, 3), np.uint8))
    assert [d.shape for d in acc.descriptors()] == [(5 * 128, 147), (5 * 128, 147)]


def test_descriptors_on_disk_equal_those_in_memory_and_reload(tmp_path, dataset):
    images = dataset[0][:10, ::2, ::2]  # 32x32
    in_memory = swd.SWDAccumulator(32, seed=3)
    on_disk = swd.SWDAccumulator(32, seed=3, directory=str(tmp_path))
    for acc in (in_memory, on_disk):
        acc.update(images[:4])
        acc.update(images[4:])
    for a, b in zip(in_memory.descriptors(), on_disk.descriptors()):
        np.testing.assert_array_equal(a, b)
    info, loaded = swd.load_descriptors(str(tmp_path))
    assert info == {"resolution": 32, "num_channels": 3, "nhoods_per_image": 128, "seed": 3, "num_images": 10}
    np.testing.assert_array_equal(loaded[1], in_memory.descriptors()[1])
    with pytest.raises(FileNotFoundError, match="descriptors.json"):
        swd.load_descriptors(str(tmp_path / "nothing"))


# --- distance -------------------------------------------------------------------------

def test_distance_matches_the_official_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(3.0, 2.0, (500, 27)).astype(np.float32)
    b = rng.gamma(2.0, 1.0, (500, 27)).astype(np.float32)
    directions = swd.random_directions(27, repeats=2, per_repeat=16, seed=0)
    expected = _ref_sliced_wasserstein(a, b, directions, num_channels=3)
    assert swd.sliced_wasserstein(a, b, directions) == pytest.approx(expected, rel=1e-4)


def test_distance_rejects_unequal_sets():
    with pytest.raises(ValueError, match="same number of images"):
        swd.sliced_wasserstein(np.ones((4, 27), np.float32), np.ones((5, 27), np.float32),
                               swd.random_directions(27, 1, 4))


def test_swd_is_zero_for_a_set_with_itself_and_symmetric(described):
    real, other, _ = described
    assert swd.swd_from_descriptors(real, real, RESOLUTION)["SWDx1e3_avg"] == 0.0
    forward = swd.swd_from_descriptors(real, other, RESOLUTION)
    assert forward == swd.swd_from_descriptors(other, real, RESOLUTION)
    assert forward["SWDx1e3_avg"] == pytest.approx(np.mean(list(forward.values())[:-1]))


@pytest.mark.parametrize("degrade, strengths", [(_blur, (0.5, 1.0, 2.0)),
                                                (_noise, (4.0, 8.0, 16.0)),
                                                (_colour_shift, (0.1, 0.2, 0.4))])
def test_swd_is_small_between_halves_and_grows_with_degradation(dataset, described, baseline, degrade,
                                                               strengths):
    halves, noise_swd = baseline
    rng = np.random.default_rng(0)
    values = [halves] + [swd.swd_from_descriptors(described[0], _describe(degrade(dataset[1], s, rng)),
                                                  RESOLUTION)["SWDx1e3_avg"] for s in strengths]
    print(f"{degrade.__name__}: halves {values[0]:.1f}, strengths {strengths} -> "
          f"{', '.join(f'{v:.1f}' for v in values[1:])}; uniform noise images {noise_swd:.1f}")
    # Halves of one dataset (~28 at 128 images a side) against uniform noise images (~290).
    assert values[0] < 0.15 * noise_swd, (values, noise_swd)
    assert all(lo < hi for lo, hi in zip(values, values[1:])), f"{degrade.__name__}: {values}"


@pytest.mark.parametrize("resolution", [4, 8])
def test_small_resolutions_use_one_level(resolution):
    images, _ = synthetic_images(64, resolution, seed=0)
    result = swd.sliced_wasserstein_distance(images[:32], images[32:])
    assert list(result) == [f"SWDx1e3_{resolution}", "SWDx1e3_avg"]
    noise = np.random.default_rng(0).integers(0, 256, images[32:].shape, dtype=np.uint8)
    assert result["SWDx1e3_avg"] < swd.sliced_wasserstein_distance(images[:32], noise)["SWDx1e3_avg"]
