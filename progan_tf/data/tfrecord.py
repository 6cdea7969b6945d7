"""The prepared-dataset format: one sharded TFRecord set per resolution, plus manifest.json.

  datasets/<name>/manifest.json
  datasets/<name>/r0004/part-00000-of-00001.tfrecord
  ...
  datasets/<name>/r0256/part-00003-of-00004.tfrecord

Each record is a tf.train.Example with `image` (the raw uint8 pixels, [R, R, C] in
row-major HWC order) and, when labels are kept, `label` (int64). Every level below
the top is the 2x2 average of the level above *as stored*, rounded half up in
integers: `lower = (a + b + c + d + 2) // 4`. (The official tool averaged unrounded
floats and rounded each level separately; ours differs from it by at most 1 and is
exactly reproducible from the stored data.)

progan_tf.data.prepare writes it (see there for how a dataset is made atomically).
"""
import json
import os

import numpy as np

from progan_tf.resolutions import resolutions_between

FORMAT = "progan_tf.tfrecord"
VERSION = 1
MANIFEST = "manifest.json"


def downsample_2x2(image):
    """uint8 [..., R, R, C] -> uint8 [..., R/2, R/2, C]: each pixel the mean of its 2x2 block, rounded half up."""
    x = image.astype(np.uint16)
    total = (x[..., 0::2, 0::2, :] + x[..., 0::2, 1::2, :]
             + x[..., 1::2, 0::2, :] + x[..., 1::2, 1::2, :])  # [..., R/2, R/2, C]
    return ((total + 2) >> 2).astype(np.uint8)


def pyramid(image):
    """uint8 [R, R, C] -> {resolution: uint8 [r, r, C]} for r = R, R/2, ..., 4."""
    levels = {image.shape[0]: image}
    while image.shape[0] > 4:
        image = downsample_2x2(image)
        levels[image.shape[0]] = image
    return levels


def resolutions_up_to(max_resolution):
    return resolutions_between(4, max_resolution)


def shard_path(resolution, index, count):
    return os.path.join(f"r{resolution:04d}", f"part-{index:05d}-of-{count:05d}.tfrecord")


def encode_example(image, label=None):
    """One record: raw uint8 pixels and an optional int64 label, as serialized tf.train.Example bytes."""
    import tensorflow as tf
    feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()]))}
    if label is not None:
        feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def read_manifest(data_dir):
    """Load and validate a prepared dataset's manifest.

    Checks the format and version, the resolutions 4..max, and that every shard file
    exists with the size the manifest records (so a damaged copy is refused too).

    Returns:
      the manifest dict.

    Raises:
      ValueError: one line saying what is wrong and how to fix it.
    """
    path = os.path.join(data_dir, MANIFEST)
    if not os.path.isfile(path):
        partial = os.path.basename(os.path.normpath(data_dir)).startswith(".") and ".partial-" in data_dir
        hint = ("it is an interrupted progan-prepare run; run progan-prepare again" if partial
                else "prepare a dataset with progan-prepare")
        raise ValueError(f"{data_dir} is not a prepared dataset (no {MANIFEST}); {hint}")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is unreadable ({e}); run progan-prepare again") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not a {FORMAT} v{VERSION} manifest; run progan-prepare again")
    if manifest["resolutions"] != resolutions_up_to(manifest["max_resolution"]):
        raise ValueError(f"{path} lists resolutions {manifest['resolutions']}, not 4..{manifest['max_resolution']}")
    for resolution in manifest["resolutions"]:
        shards = manifest["levels"][str(resolution)]
        if sum(s["num_images"] for s in shards) != manifest["num_images"]:
            raise ValueError(f"{path}: the {resolution}x{resolution} shards do not add up to "
                             f"{manifest['num_images']} images; run progan-prepare again")
        for shard in shards:
            file = os.path.join(data_dir, shard["file"])
            if not os.path.isfile(file) or os.path.getsize(file) != shard["bytes"]:
                raise ValueError(f"{file} is missing or has the wrong size; the dataset is damaged, "
                                 f"run progan-prepare again with --overwrite")
    return manifest


def read_level(data_dir, resolution, manifest=None, labels=False):
    """Every image of one level, in the order they were written.

    Args:
      data_dir: a prepared dataset.
      resolution: one of its resolutions.
      manifest: its manifest, if already read.
      labels: also return the labels (the dataset must have been prepared with keep_labels).

    Returns:
      uint8 [N, R, R, C], or (that, int64 [N]) with `labels`.
    """
    import tensorflow as tf
    manifest = manifest or read_manifest(data_dir)
    shards = manifest["levels"][str(resolution)]
    spec = {"image": tf.io.FixedLenFeature([], tf.string)}
    if labels:
        spec["label"] = tf.io.FixedLenFeature([], tf.int64)
    shape = [-1, resolution, resolution, manifest["num_channels"]]
    parts = []
    for shard in shards:
        images, label_values = [np.zeros([0] + shape[1:], np.uint8)], [np.zeros([0], np.int64)]
        for batch in tf.data.TFRecordDataset(os.path.join(data_dir, shard["file"])).batch(1024):
            features = tf.io.parse_example(batch, spec)
            images.append(tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), shape).numpy())
            if labels:
                label_values.append(features["label"].numpy())
        parts.append((np.concatenate(images), np.concatenate(label_values)))
    # Image i went to shard i % S as its (i // S)-th record.
    order = [(i % len(parts), i // len(parts)) for i in range(manifest["num_images"])]
    images = np.stack([parts[s][0][k] for s, k in order]) if order else np.zeros([0] + shape[1:], np.uint8)
    if not labels:
        return images
    return images, np.array([parts[s][1][k] for s, k in order], np.int64)
