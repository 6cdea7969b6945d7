"""The dataset format (progan_tf/data/tfrecord.py): exact 2x2 pyramids, shards, a reader that refuses damage."""
import os

import numpy as np
import pytest

from prepared_datasets import ListSource, assert_exact_pyramid, prepare
from progan_tf.data import tfrecord
from progan_tf.data.synthetic import synthetic_images


def test_every_level_is_the_exact_2x2_average_of_the_one_above(tmp_path):
    images, _ = synthetic_images(12, 32, seed=3)
    prepare(ListSource(list(images)), tmp_path / "d", shards=5)
    manifest, levels = assert_exact_pyramid(tmp_path / "d", images)
    assert manifest["resolutions"] == [4, 8, 16, 32] and manifest["num_images"] == 12
    assert [len(manifest["levels"][str(r)]) for r in manifest["resolutions"]] == [5, 5, 5, 5]
    assert levels[4].shape == (12, 4, 4, 3) and levels[4].dtype == np.uint8


def test_reader_refuses_incomplete_or_damaged_datasets(tmp_path):
    prepare(ListSource([np.zeros((8, 8, 3), np.uint8)] * 4), tmp_path / "d")
    tfrecord.read_manifest(str(tmp_path / "d"))
    shard = tmp_path / "d" / "r0008" / "part-00000-of-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match="missing or has the wrong size"):
        tfrecord.read_manifest(str(tmp_path / "d"))
    os.remove(tmp_path / "d" / "manifest.json")
    with pytest.raises(ValueError, match="not a prepared dataset"):
        tfrecord.read_manifest(str(tmp_path / "d"))
