"""tf.data input pipelines that feed the trainer.

Every source offers the same small interface the trainer relies on:

  source.num_channels, source.max_resolution, source.num_images
  source.dataset(resolution, per_replica_batch, input_context=None, mirror=False, seed=0,
                 skip_batches=0)
      -> infinite tf.data.Dataset of float32 [per_replica_batch, R, R, C] in [-1, 1]

The stream is a pure function of (seed, input pipeline): the same arguments give
the same batches in every process, and `skip_batches=k` gives that stream without
its first k batches, cheaply. That is what lets a resumed run see exactly the data
an uninterrupted run would have seen.

The trainer calls `dataset` from `strategy.distribute_datasets_from_function`, so
each input pipeline shards by `input_context` and batches per replica.
"""
import numpy as np
import tensorflow as tf


def box_downsample(images, factor):
    """2x2-average `factor` times over: the same reduction the TFRecord levels use.

    Args:
      images: uint8 or float array [N, H, W, C].
      factor: integer power of two.

    Returns:
      float32 array [N, H/factor, W/factor, C] in the input's value range.
    """
    n, h, w, c = images.shape
    x = images.astype(np.float32).reshape(n, h // factor, factor, w // factor, factor, c)
    return x.mean(axis=(2, 4))


def mirror_by_position(position, image, seed):
    """Flip `image` [R, R, C] left-right with probability 1/2, decided by its stream position.

    A stateless decision keyed on the position (not an op-level random state) keeps
    the flips identical when a stream is skipped ahead on resume.
    """
    flip = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), position])) < 0.5
    return tf.where(flip, tf.reverse(image, axis=[1]), image)


class ArraySource:
    """Images held in memory (the embedded synthetic set, small experiments, tests).

    Lower resolutions are made by 2x2 box averaging, exactly as the TFRecord levels are.

    Args:
      images: uint8 array [N, R, R, C] at the maximum resolution.
      name: a label for logs and the run config.
    """

    def __init__(self, images, name="array"):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, R, R, C] squares, got shape {images.shape}")
        self.images = images
        self.name = name
        self.num_images = images.shape[0]
        self.max_resolution = images.shape[1]
        self.num_channels = images.shape[3]
        self._levels = {}

    def level(self, resolution):
        """float32 [N, resolution, resolution, C] in [0, 255] (cached)."""
        if resolution > self.max_resolution:
            raise ValueError(
                f"resolution {resolution} exceeds this source's maximum {self.max_resolution}; "
                f"lower --resolution or use larger images")
        if resolution not in self._levels:
            self._levels[resolution] = box_downsample(self.images, self.max_resolution // resolution)
        return self._levels[resolution]

    def dataset(self, resolution, per_replica_batch, input_context=None, mirror=False, seed=0,
                skip_batches=0):
        images = tf.constant(self.level(resolution))  # [N, R, R, C] in [0, 255]
        indices = tf.data.Dataset.range(self.num_images)
        if input_context is not None and input_context.num_input_pipelines > 1:
            indices = indices.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            seed = seed * 1000 + input_context.input_pipeline_id
        # Shuffle indices, not pixels: the buffer stays tiny and skipping ahead costs nothing.
        indices = indices.shuffle(self.num_images, seed=seed, reshuffle_each_iteration=True).repeat()
        stream = indices.enumerate().skip(skip_batches * per_replica_batch)

        def load(position, index):
            image = tf.gather(images, index) / 127.5 - 1.0  # [R, R, C] in [-1, 1]
            return mirror_by_position(position, image, seed) if mirror else image

        stream = stream.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return stream.batch(per_replica_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
