"""Prepared datasets for the data tests: any list of images as a source, prepare_dataset with test
defaults, and the check that a dataset's levels are the exact 2x2 pyramid of its top level."""
import numpy as np

from progan_tf.data import prepare as prepare_lib
from progan_tf.data import sources, tfrecord


class ListSource(sources.IndexedSource):
    """In-memory test source: any list of uint8 [H, W, C] arrays (labels = list positions)."""
    kind = "list"
    label_names = None
    description = "test list"

    def __init__(self, images):
        self.images = images
        self.count = len(images)
        self.num_channels = images[0].shape[-1]

    def load(self, item):
        return self.images[item], item


def prepare(source, out_dir, **kwargs):
    """prepare_dataset with one worker, in source order and without a progress bar, unless told otherwise."""
    kwargs = {"workers": 1, "shuffle": False, "progress": False, **kwargs}
    return prepare_lib.prepare_dataset(source, str(out_dir), **kwargs)


def mean_2x2_rounded(level):
    """Reference reduction, written independently of the library: floor(mean + 1/2) of each 2x2 block."""
    n, r, _, c = level.shape
    mean = level.astype(np.float64).reshape(n, r // 2, 2, r // 2, 2, c).mean(axis=(2, 4))
    return np.floor(mean + 0.5).astype(np.uint8)


def assert_exact_pyramid(data_dir, top):
    """The top level equals `top` and every lower level is the rounded 2x2 average of the one above."""
    manifest = tfrecord.read_manifest(str(data_dir))
    levels = {r: tfrecord.read_level(str(data_dir), r, manifest) for r in manifest["resolutions"]}
    np.testing.assert_array_equal(levels[manifest["max_resolution"]], top)
    for r in manifest["resolutions"][:-1]:
        np.testing.assert_array_equal(levels[r], mean_2x2_rounded(levels[2 * r]), err_msg=f"level {r}")
    return manifest, levels
