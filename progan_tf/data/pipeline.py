"""tf.data input pipelines that feed the trainer.

Every source offers the same small interface the trainer relies on:

  source.num_channels, source.max_resolution, source.num_images
  source.dataset(resolution, per_replica_batch, input_context=None, mirror=False, seed=0)
      -> infinite tf.data.Dataset of float32 [per_replica_batch, R, R, C] in [-1, 1]

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


def _to_model_range(images_uint8_like):
    """[0, 255] -> [-1, 1] float32."""
    return tf.cast(images_uint8_like, tf.float32) / 127.5 - 1.0


def finish_pipeline(dataset, per_replica_batch, mirror, seed, shuffle_buffer):
    """Shuffle, repeat, mirror, batch and prefetch a dataset of single images [R, R, C] in [0, 255]."""
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.map(_to_model_range, num_parallel_calls=tf.data.AUTOTUNE)
    if mirror:
        dataset = dataset.map(
            lambda x: tf.image.random_flip_left_right(x, seed=seed), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(per_replica_batch, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


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

    def dataset(self, resolution, per_replica_batch, input_context=None, mirror=False, seed=0):
        images = self.level(resolution)
        dataset = tf.data.Dataset.from_tensor_slices(images)
        if input_context is not None and input_context.num_input_pipelines > 1:
            dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            seed = seed + input_context.input_pipeline_id
        return finish_pipeline(dataset, per_replica_batch, mirror, seed, shuffle_buffer=len(images))
