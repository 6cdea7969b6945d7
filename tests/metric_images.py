"""The images the SWD and pyramid tests measure: the embedded dataset in two halves, and floats back to uint8."""
import numpy as np
import pytest

from progan_tf.data.synthetic import synthetic_images

RESOLUTION = 64
NUM_IMAGES = 128  # per set; 128 * 128 = 16 384 descriptors per level


@pytest.fixture(scope="module")
def dataset():
    """The embedded dataset split into two disjoint halves, uint8 [N, 64, 64, 3] each."""
    images, _ = synthetic_images(2 * NUM_IMAGES, RESOLUTION, seed=0)
    return images[:NUM_IMAGES], images[NUM_IMAGES:]


def quantise(images):
    """Float images on the [0, 255] scale -> uint8, rounded to the nearest value."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
