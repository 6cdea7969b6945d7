"""tf.data input pipelines that feed the trainer.

A training dataset has the same small interface everywhere: num_channels, max_resolution, num_images, and
batches(resolution, per_replica_batch, input_context=None, mirror=False, seed=0, skip_batches=0) -> an infinite
tf.data.Dataset of float32 [per_replica_batch, R, R, C] in [-1, 1]. The stream is a pure function of (seed, input
pipeline): the same arguments give the same batches in every process, and `skip_batches=k` gives that stream without
its first k batches, cheaply. That is what lets a resumed run see exactly the data an uninterrupted run would have
seen. The trainer calls `batches` from `strategy.distribute_datasets_from_function`, so each input pipeline shards by
`input_context` and batches per replica.

Datasets here: ArrayDataset (images in memory) and PreparedDataset (a dataset prepared by progan-prepare;
`open_dataset(data_dir)` opens and checks one). The inputs that progan-prepare reads are "sources"
(progan_tf.data.sources).
"""
import hashlib
import os
import threading

import numpy as np
import tensorflow as tf

from progan_tf.data import tfrecord
from progan_tf.errors import ConfigError


class ArrayDataset:
    """Images held in memory (the embedded synthetic set, small experiments, tests).

    `images`: uint8 [N, R, R, C] at the maximum resolution; `name` labels logs and the run config. Lower resolutions
    are made with the prepared datasets' own rule (`tfrecord.downsample_2x2`), so training on these images or on the
    same images prepared as TFRecords sees the same pixels.
    """

    def __init__(self, images, name="array"):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images must be [N, R, R, C] squares, got shape {images.shape}")
        self.images = images
        self.name = name
        self.num_images = images.shape[0]
        self.max_resolution = images.shape[1]
        self.num_channels = images.shape[3]
        self._levels = {}

    def identity(self):
        """What a run records of its data, to notice a resume on other images."""
        return {"name": self.name, "num_images": int(self.num_images), "max_resolution": int(self.max_resolution),
                "num_channels": int(self.num_channels),
                "fingerprint": hashlib.sha1(np.ascontiguousarray(self.images).tobytes()).hexdigest()[:16]}

    def level(self, resolution):
        """uint8 [N, resolution, resolution, C] (cached)."""
        if resolution > self.max_resolution:
            raise ConfigError("resolution {asked} exceeds this dataset's maximum {maximum}; lower {resolution} or use "
                              "larger images", asked=resolution, maximum=self.max_resolution)
        if resolution not in self._levels:
            images = self.images
            while images.shape[1] > resolution:
                images = tfrecord.downsample_2x2(images)  # [N, r/2, r/2, C]
            self._levels[resolution] = images
        return self._levels[resolution]

    def batches(self, resolution, per_replica_batch, input_context=None, mirror=False, seed=0,
                skip_batches=0):
        seed = pipeline_seed(seed, input_context)
        batches = indexed_batches(self.level(resolution), per_replica_batch, input_context, seed, skip_batches)
        return finish_batches(batches, mirror, seed, skip_batches)


def pipeline_seed(seed, input_context):
    """The seed of one input pipeline: distinct per pipeline, the same in every run."""
    if input_context is not None and input_context.num_input_pipelines > 1:
        return seed * 1000 + input_context.input_pipeline_id
    return seed


def indexed_batches(images, per_replica_batch, input_context, seed, skip_batches):
    """Batches gathered from an in-memory level by shuffled index: [B, R, R, C] of the input dtype.

    Shuffling indices, not pixels, keeps the buffer tiny and makes skipping ahead cheap.
    """
    images = tf.constant(images)  # [N, R, R, C]
    indices = tf.data.Dataset.range(images.shape[0])
    if input_context is not None and input_context.num_input_pipelines > 1:
        indices = indices.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    indices = indices.shuffle(images.shape[0], seed=seed, reshuffle_each_iteration=True).repeat()
    batches = indices.batch(per_replica_batch, drop_remainder=True).skip(skip_batches)
    return batches.map(lambda index: tf.gather(images, index), num_parallel_calls=tf.data.AUTOTUNE)


def finish_batches(batches, mirror, seed, first_batch):
    """[B, R, R, C] uint8 or [0, 255] floats -> float32 in [-1, 1], mirrored, prefetched.

    Each image's flip is a stateless function of (seed, its position in the stream), so a stream skipped ahead on
    resume flips as the uninterrupted one did, and the same images flip alike however many replicas split the stream
    into batches.
    """
    seed = tf.constant(seed, tf.int64)

    def flip_of(position):
        return tf.random.stateless_uniform([], seed=tf.stack([seed, position])) < 0.5

    def to_float(batch_index, images):
        x = tf.cast(images, tf.float32) / 127.5 - 1.0  # [B, R, R, C] in [-1, 1]
        if mirror:
            n = tf.shape(x, out_type=tf.int64)[0]
            positions = batch_index * n + tf.range(n)  # [B]
            flip = tf.map_fn(flip_of, positions, fn_output_signature=tf.bool)
            x = tf.where(flip[:, None, None, None], tf.reverse(x, axis=[2]), x)
        return x

    batches = batches.enumerate(start=first_batch).map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return tfrecord.without_autotune(batches.prefetch(tf.data.AUTOTUNE))


class PreparedDataset:
    """A dataset prepared by progan-prepare (datasets/<name>/), read one resolution at a time.

    Levels of at most `cache_mb` (uint8 bytes) are read once into memory and served like ArrayDataset; larger ones
    stream from their shards: files assigned per input pipeline, `parallel_reads` shards read at once (interleaved),
    shuffled in a buffer of `shuffle_mb`, decoded a batch at a time. Each epoch's file order and shuffle are seeded by
    (seed, epoch), so `skip_batches` restarts the stream at the right epoch and skips only raw records within it.
    Raises ValueError if data_dir is not a complete prepared dataset.
    """

    def __init__(self, data_dir, cache_mb=256, shuffle_mb=256, parallel_reads=8):
        self.data_dir = data_dir
        self.manifest = tfrecord.read_manifest(data_dir)
        self.name = self.manifest["name"]
        self.num_images = self.manifest["num_images"]
        self.max_resolution = self.manifest["max_resolution"]
        self.num_channels = self.manifest["num_channels"]
        self.resolutions = self.manifest["resolutions"]
        self.cache_mb, self.shuffle_mb, self.parallel_reads = cache_mb, shuffle_mb, parallel_reads
        self._levels = {}

    def identity(self):
        """What a run records of its data: the manifest's fingerprint, counts and shape."""
        with open(os.path.join(self.data_dir, tfrecord.MANIFEST), "rb") as f:
            fingerprint = hashlib.sha1(f.read()).hexdigest()[:16]
        return {"name": self.name, "num_images": int(self.num_images), "max_resolution": int(self.max_resolution),
                "num_channels": int(self.num_channels), "fingerprint": fingerprint}

    def image_bytes(self, resolution):
        return resolution * resolution * self.num_channels

    def is_cached(self, resolution):
        """Whether `resolution` is served from memory."""
        return self.num_images * self.image_bytes(resolution) <= self.cache_mb * 2**20

    def check_resolution(self, resolution):
        if resolution not in self.resolutions:
            raise ConfigError("dataset {path} holds {low}x{low} to {high}x{high}, not {asked}x{asked}: train with "
                              "{resolution}={high} or prepare it again with {max_resolution}={asked}",
                              path=self.data_dir, low=self.resolutions[0], high=self.max_resolution, asked=resolution)

    def level(self, resolution):
        """Every image at `resolution`, uint8 [N, R, R, C] in written order (kept if cached)."""
        self.check_resolution(resolution)
        if resolution in self._levels:
            return self._levels[resolution]
        images = tfrecord.read_level(self.data_dir, resolution, self.manifest)
        if self.is_cached(resolution):
            self._levels[resolution] = images
        return images

    def batches(self, resolution, per_replica_batch, input_context=None, mirror=False, seed=0,
                skip_batches=0):
        self.check_resolution(resolution)
        pipe_seed = pipeline_seed(seed, input_context)
        if self.is_cached(resolution):
            batches = indexed_batches(self.level(resolution), per_replica_batch, input_context, pipe_seed,
                                      skip_batches)
        else:
            batches = self._stream(resolution, per_replica_batch, input_context, seed, pipe_seed, skip_batches)
        return finish_batches(batches, mirror, pipe_seed, skip_batches)

    def _stream(self, resolution, per_replica_batch, input_context, seed, pipe_seed, skip_batches):
        """Raw uint8 batches [B, R, R, C] streamed from the level's shards."""
        shards = self.manifest["levels"][str(resolution)]
        files = [(os.path.join(self.data_dir, s["file"]), s["num_images"]) for s in shards]
        pipelines, pipeline_id = ((input_context.num_input_pipelines, input_context.input_pipeline_id)
                                  if input_context is not None else (1, 0))
        record_shard = None
        if pipelines > 1 and len(files) >= pipelines:
            files = files[pipeline_id::pipelines]  # a fixed share of the files: every image once per epoch
            order_seed, epoch_images = pipe_seed, sum(n for _, n in files)
        else:
            # Too few files to share: every pipeline reads the same sequence and keeps every n-th record.
            record_shard = (pipelines, pipeline_id) if pipelines > 1 else None
            order_seed, epoch_images = seed, len(range(pipeline_id, self.num_images, pipelines))
        if epoch_images < 1:
            raise ValueError(f"input pipeline {pipeline_id} of {pipelines} gets no images of {self.data_dir}")
        paths = tf.constant([path for path, _ in files])
        buffer = max(1, min(epoch_images, self.shuffle_mb * 2**20 // self.image_bytes(resolution)))
        cycle = min(len(files), self.parallel_reads)

        def epoch(index):
            key = tf.stack([tf.constant(order_seed, tf.int64), index])
            order = tf.random.experimental.stateless_shuffle(paths, seed=key)
            records = tf.data.Dataset.from_tensor_slices(order).interleave(
                lambda path: tf.data.TFRecordDataset(path, buffer_size=1 << 20), cycle_length=cycle,
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            if record_shard:
                records = records.shard(*record_shard)
            shuffle_seed = tf.random.stateless_uniform(
                [], seed=tf.stack([tf.constant(pipe_seed, tf.int64), index]), maxval=2**31 - 1, dtype=tf.int64)
            return records.shuffle(buffer, seed=shuffle_seed)

        first_epoch, offset = divmod(skip_batches * per_replica_batch, epoch_images)
        records = tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch).skip(offset)
        shape = [per_replica_batch, resolution, resolution, self.num_channels]

        def decode(serialized):  # [B] Example protos
            features = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([], tf.string)})
            return tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), shape)  # [B, R, R, C]

        return records.batch(per_replica_batch, drop_remainder=True).map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def open_dataset(data_dir, num_channels=None, max_resolution=None, **options):
    """Open datasets/<name> (as written by progan-prepare) as a PreparedDataset, checked against the run's config.

    num_channels and max_resolution (the run trains up to) are checked unless None; **options go to PreparedDataset.
    Raises ValueError with a one-line message naming the mismatch and its fix.
    """
    dataset = PreparedDataset(data_dir, **options)
    if num_channels is not None and num_channels != dataset.num_channels:
        raise ConfigError("dataset {path} has {has} channel(s) but {num_channels}={asked}: use {num_channels}={has}, "
                          "or prepare it again (e.g. progan-prepare --mnist_rgb for 3-channel MNIST)",
                          path=data_dir, has=dataset.num_channels, asked=num_channels)
    if max_resolution is not None:
        dataset.check_resolution(max_resolution)
    return dataset


def drop_in_background(box):
    """Delete what the list `box` holds on a daemon thread; the caller must hold no other reference.

    Deleting a tf.data iterator waits for its pipeline's threads, and one of them can sleep for tens of seconds: demo
    runs sat idle for 20-25 s after their last tick, in that deletion (py-spy: `RootDataset::Iterator::~Iterator`
    waiting on a thread of the pipeline). The run's checkpoint and export need not wait for it, nor the next phase.
    """
    threading.Thread(target=box.clear, name="progan-drop-iterator", daemon=True).start()
