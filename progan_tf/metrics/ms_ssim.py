"""Average multi-scale SSIM over random pairs of images: a measure of (lack of) diversity.

The paper (Section 5, after Odena et al. 2017) averages MS-SSIM over 10 000
random pairs of generated images; lower means more varied. We use
`tf.image.ssim_multiscale` with its standard settings (5 scales, 11x11 Gaussian
filter, sigma 1.5) wherever they fit.

Small resolutions. `ssim_multiscale` halves the image between scales and needs
the coarsest scale to be at least as large as the filter. The rule:
- use as many scales (up to 5) as keep the coarsest scale >= 11 pixels: 5 scales
  from 176x176 up (256 and above), 4 at 128, 3 at 64, 2 at 32, 1 at 16 (11-15: 1);
- below 11 pixels, one scale with the filter shrunk to the largest odd size
  that fits (7 at 8x8, 3 at 4x4) and its sigma shrunk in proportion;
- the standard per-scale weights of the scales kept, renormalised to sum to 1.
Values at different resolutions are therefore not comparable with each other.
"""
import numpy as np
import tensorflow as tf

NUM_PAIRS = 10_000  # the paper's number of pairs
FILTER_SIZE = 11  # tf.image.ssim_multiscale defaults
FILTER_SIGMA = 1.5
SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first


def ms_ssim_settings(resolution):
    """The scales and filter used at one resolution (see the module docstring).

    Args:
      resolution: image side in pixels.

    Returns:
      dict of `power_factors` (tuple), `filter_size` (int) and `filter_sigma`
      (float), keyword arguments for `tf.image.ssim_multiscale`.
    """
    scales = 1
    while scales < len(SCALE_WEIGHTS) and resolution // 2**scales >= FILTER_SIZE:
        scales += 1
    weights = np.array(SCALE_WEIGHTS[:scales])
    filter_size = min(FILTER_SIZE, resolution - 1 + resolution % 2)
    return {"power_factors": tuple(float(w) for w in weights / weights.sum()),
            "filter_size": filter_size,
            "filter_sigma": FILTER_SIGMA * filter_size / FILTER_SIZE}


def ms_ssim_pairs(images_a, images_b):
    """MS-SSIM of each pair (images_a[i], images_b[i]).

    Args:
      images_a, images_b: uint8 [N, R, R, C] in [0, 255].

    Returns:
      float32 numpy [N], 1 for identical images, near 0 for unrelated noise.
    """
    settings = ms_ssim_settings(images_a.shape[1])
    return tf.image.ssim_multiscale(tf.cast(images_a, tf.float32), tf.cast(images_b, tf.float32),
                                    max_val=255.0, **settings).numpy()


class MSSSIMAccumulator:
    """Streams batches of images and scores random pairs within each batch.

    Every batch is shuffled and split into halves that are paired up, so a
    stream of independent images (a generator's, or a shuffled dataset) yields
    independent random pairs; a batch of N images gives N // 2 pairs.

    Args:
      seed: seeds the pairing.
    """

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
