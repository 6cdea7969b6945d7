"""Average multi-scale SSIM over random pairs of generated images (the paper's Section 5, after Odena et al.
2017): lower means more varied. `tf.image.ssim_multiscale` with its standard settings where they fit, fewer scales
and a smaller filter at small resolutions (docs/METRICS.md), so values at different resolutions do not compare.
"""
import numpy as np
import tensorflow as tf

NUM_PAIRS = 10_000  # the paper's number of pairs
FILTER_SIZE = 11  # tf.image.ssim_multiscale defaults
FILTER_SIGMA = 1.5
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first


def ms_ssim_settings(resolution):
    """Keyword arguments for `tf.image.ssim_multiscale` at one resolution: `power_factors`, `filter_size`,
    `filter_sigma` (the rule is in docs/METRICS.md)."""
    scales = 1
    while scales < len(SCALE_WEIGHTS) and resolution // 2**scales >= FILTER_SIZE:
        scales += 1
    weights = np.array(SCALE_WEIGHTS[:scales])
    filter_size = min(FILTER_SIZE, resolution - 1 + resolution % 2)
    return {"power_factors": tuple(float(w) for w in weights / weights.sum()),
            "filter_size": filter_size,
            "filter_sigma": FILTER_SIGMA * filter_size / FILTER_SIZE}


def ms_ssim_pairs(images_a, images_b):
    """MS-SSIM of each pair (images_a[i], images_b[i]) of uint8 [N, R, R, C] images: float32 [N], 1 for identical
    images, near 0 for unrelated noise."""
    settings = ms_ssim_settings(images_a.shape[1])
    return tf.image.ssim_multiscale(tf.cast(images_a, tf.float32), tf.cast(images_b, tf.float32),
                                    max_val=255.0, **settings).numpy()


class MSSSIMAccumulator:
    """Streams batches of images and scores random pairs within each batch: each batch is shuffled and split
    into halves that are paired up, so independent images give N // 2 independent pairs per batch of N."""

    def __init__(self, seed=0):
        self._rng = np.random.default_rng(seed)
        self._scores = []

    @property
    def num_pairs(self):
        return sum(len(s) for s in self._scores)

    def update(self, images):
        """Add a batch of uint8 images [N, R, R, C]."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"MS-SSIM expects uint8 images [N, R, R, C], got {images.dtype} {images.shape}")
        order = self._rng.permutation(len(images))
        half = len(images) // 2
        self._scores.append(ms_ssim_pairs(images[order[:half]], images[order[half:2 * half]]))

    def result(self):
        """Mean MS-SSIM over all pairs so far (float)."""
        if not self.num_pairs:
            raise ValueError("MS-SSIM needs at least one pair (batches of two or more images)")
        return float(np.mean(np.concatenate(self._scores), dtype=np.float64))
