"""The embedded dataset (progan_tf/data/synthetic.py): the same images for the same index and seed, four shapes."""
import numpy as np

from progan_tf.data.synthetic import SHAPES, synthetic_image, synthetic_images


def test_images_are_a_function_of_index_and_seed():
    images, labels = synthetic_images(6, 16, seed=3, start=10)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.uint8 and labels.dtype == np.int64
    for i in range(6):
        image, label = synthetic_image(10 + i, 16, seed=3)
        np.testing.assert_array_equal(images[i], image, err_msg=f"image {10 + i}")
        assert labels[i] == label
    assert not np.array_equal(synthetic_image(10, 16, seed=4)[0], images[0])
    assert not np.array_equal(images[0], images[1])
    empty, no_labels = synthetic_images(0, 8)
    assert empty.shape == (0, 8, 8, 3) and no_labels.shape == (0,)


def test_every_shape_occurs_and_every_image_holds_a_bright_shape():
    images, labels = synthetic_images(64, 32)
    assert sorted(set(labels.tolist())) == list(range(len(SHAPES)))
    # Backgrounds are muted (channels <= 0.55); each shape has one channel >= 0.85 (217 of 255).
    assert images.reshape(64, -1).max(axis=1).min() >= 217
