"""MS-SSIM over random pairs: scale rule, identical pairs, independent noise, the batch accumulator."""
import numpy as np
import pytest

from progan_tf.data.synthetic import synthetic_images
from progan_tf.metrics import ms_ssim


def _noise(count, resolution, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, resolution, resolution, 3), dtype=np.uint8)


@pytest.mark.parametrize("resolution, scales, filter_size", [
    (1024, 5, 11), (256, 5, 11), (128, 4, 11), (64, 3, 11), (32, 2, 11), (16, 1, 11), (8, 1, 7), (4, 1, 3)])
def test_scales_and_filter_shrink_with_resolution(resolution, scales, filter_size):
    settings = ms_ssim.ms_ssim_settings(resolution)
    assert len(settings["power_factors"]) == scales
    assert sum(settings["power_factors"]) == pytest.approx(1.0)
    assert settings["filter_size"] == filter_size
    # The coarsest scale always holds the whole filter: ssim_multiscale would fail otherwise.
    assert resolution // 2 ** (scales - 1) >= filter_size


@pytest.mark.parametrize("resolution", [4, 8, 32, 64, 256])
def test_identical_pairs_score_one_and_independent_noise_near_zero(resolution):
    count = 8 if resolution >= 256 else 32  # 256x256 pairs each average 65 k pixels; 32 of them took 18 s
    a, b = _noise(count, resolution, seed=0), _noise(count, resolution, seed=1)
    np.testing.assert_allclose(ms_ssim.ms_ssim_pairs(a, a), 1.0, atol=1e-5)
    noise = float(np.mean(ms_ssim.ms_ssim_pairs(a, b)))
    # ssim_multiscale clips negative terms at 0, so the mean of a zero-centred term is
    # positive, the more so the fewer pixels it averages: ~0.03-0.09 from 32x32 up; at 4x4
    # and 8x8 the SSIM map is 2x2 pixels and the mean ~0.13.
    assert abs(noise) < (0.2 if resolution <= 8 else 0.1), noise


def test_more_similar_pairs_score_higher():
    images, _ = synthetic_images(32, 64, seed=0)
    noisy = np.clip(images + np.random.default_rng(0).normal(0, 20, images.shape), 0, 255).astype(np.uint8)
    same_noised = float(np.mean(ms_ssim.ms_ssim_pairs(images, noisy)))
    different = float(np.mean(ms_ssim.ms_ssim_pairs(images[:16], images[16:])))
    unrelated = float(np.mean(ms_ssim.ms_ssim_pairs(images[:16], _noise(16, 64, seed=0))))
    assert unrelated < different < same_noised < 1.0, (unrelated, different, same_noised)


def test_accumulator_pairs_within_batches():
    images, _ = synthetic_images(41, 32, seed=0)
    acc = ms_ssim.MSSSIMAccumulator(seed=0)
    with pytest.raises(ValueError, match="at least one pair"):
        acc.result()
    acc.update(images[:20])
    acc.update(images[20:])  # 21 images: one is left unpaired
    assert acc.num_pairs == 20
    again = ms_ssim.MSSSIMAccumulator(seed=0)
    again.update(images[:20])
    again.update(images[20:])
    assert acc.result() == again.result()
    assert 0.0 < acc.result() < 0.5  # varied images


def test_accumulator_of_a_collapsed_generator_is_one():
    image, _ = synthetic_images(1, 32, seed=0)
    acc = ms_ssim.MSSSIMAccumulator()
    acc.update(np.repeat(image, 10, axis=0))
    assert acc.result() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        acc.update(np.zeros((2, 32, 32, 3), np.float32))
