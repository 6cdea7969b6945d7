"""The prepared-dataset format: one sharded TFRecord set per resolution, plus manifest.json.

Layout: datasets/<name>/manifest.json, datasets/<name>/r0004/part-00000-of-00001.tfrecord, ...,
datasets/<name>/r0256/part-00003-of-00004.tfrecord. Each record is a tf.train.Example with `image` (the raw uint8
pixels, [R, R, C] in row-major HWC order) and, when labels are kept, `label` (int64). Every level below the top is the
2x2 average of the level above *as stored*, rounded half up in integers: `lower = (a + b + c + d + 2) // 4`. (The
official tool averaged unrounded floats and rounded each level separately; ours differs from it by at most 1 and is
exactly reproducible from the stored data.) progan_tf.data.prepare writes it (see there for how a dataset is made
atomically).
"""
import json
import os
import shutil

import numpy as np

from progan_tf.errors import ConfigError
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
    """Load and validate a prepared dataset's manifest; returns the manifest dict.

    Checks the format and version, the resolutions 4..max, and that every shard file exists with the size the manifest
    records (so a damaged copy is refused too). Raises ValueError: one line saying what is wrong and how to fix it.
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
    if manifest["resolutions"] != resolutions_between(4, manifest["max_resolution"]):
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


def without_autotune(dataset):
    """`dataset` with tf.data's autotuning off (parallelism AUTOTUNE then means one call per core).

    Autotuning runs a thread that sleeps between optimisations, up to a minute at a time, and deleting the dataset's
    iterator waits for that sleep to end: the trainer stalled for up to 40 s at a phase switch or at the end of a run,
    idle. The pipelines here need no tuning to outrun training (benchmarks/RESULTS.md, "Idle time").
    """
    import tensorflow as tf
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def read_level(data_dir, resolution, manifest=None, labels=False):
    """Every image of one level, in written order: uint8 [N, R, R, C], or (that, int64 [N] labels) with `labels`.

    `labels` needs a dataset prepared with keep_labels; pass `manifest` if already read.
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
        for batch in without_autotune(tf.data.TFRecordDataset(os.path.join(data_dir, shard["file"])).batch(1024)):
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


def is_dataset(path):
    """Whether `path` holds a dataset this package wrote (its manifest names the format)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(out_dir, overwrite):
    """Refuse to write over anything but an empty directory or, with `overwrite`, a dataset of ours.

    Raises ConfigError if `out_dir` is a dataset and `overwrite` is False, or if it holds something else (which
    `overwrite` never deletes).
    """
    if not os.path.exists(out_dir) or (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        return
    if not is_dataset(out_dir):
        raise ConfigError("{path} exists and is not a progan_tf dataset (no manifest.json of format {format}); "
                          "{overwrite} replaces only datasets: choose another {out_dir} or {name}", path=out_dir,
                          format=FORMAT)
    if not overwrite:
        raise ConfigError("{path} already exists; pass {overwrite} to replace it", path=out_dir)


class DatasetWriter:
    """Writes records round-robin into per-resolution shards of a temporary directory.
    `commit` writes the manifest and renames the directory into place; `abort` removes it."""

    def __init__(self, out_dir, shard_counts, overwrite=False):
        self.out_dir = os.path.normpath(out_dir)
        check_target(self.out_dir, overwrite)
        parent, base = os.path.split(os.path.abspath(self.out_dir))
        os.makedirs(parent, exist_ok=True)
        _remove_stale_partials(parent, base)
        self.tmp_dir = os.path.join(parent, f".{base}.partial-{os.getpid()}")
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        os.makedirs(self.tmp_dir)
        self.overwrite = overwrite
        self.shard_counts = shard_counts
        self.counts = {r: [0] * n for r, n in shard_counts.items()}
        self.writers = {}
        self.num_images = 0

    def add(self, records):
        """records: {resolution: serialized example} of one image."""
        import tensorflow as tf
        for resolution, record in records.items():
            shard = self.num_images % self.shard_counts[resolution]
            key = (resolution, shard)
            if key not in self.writers:
                path = os.path.join(self.tmp_dir, shard_path(resolution, shard, self.shard_counts[resolution]))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self.writers[key] = tf.io.TFRecordWriter(path)
            self.writers[key].write(record)
            self.counts[resolution][shard] += 1
        self.num_images += 1

    def commit(self, manifest):
        """Close the shards, write the full manifest (`manifest` + shard list), move the dataset in place; return it."""
        for writer in self.writers.values():
            writer.close()
        levels = {}
        for resolution, counts in self.counts.items():
            levels[str(resolution)] = [
                {"file": shard_path(resolution, i, len(counts)), "num_images": n,
                 "bytes": os.path.getsize(os.path.join(self.tmp_dir, shard_path(resolution, i, len(counts))))}
                for i, n in enumerate(counts)]  # empty shards stay: they keep the round-robin order
        manifest = {"format": FORMAT, "version": VERSION, **manifest, "num_images": self.num_images,
                    "levels": levels}
        manifest["bytes"] = sum(s["bytes"] for shards in levels.values() for s in shards)
        with open(os.path.join(self.tmp_dir, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        old = None
        if os.path.exists(self.out_dir):
            check_target(self.out_dir, self.overwrite)
            old = self.tmp_dir.replace(".partial-", ".old-")
            os.rename(self.out_dir, old)
        os.rename(self.tmp_dir, self.out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return manifest

    def abort(self):
        for writer in self.writers.values():
            try:
                writer.close()
            except Exception:  # closing flushes, which fails again on a full disk; the files are deleted anyway
                pass
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _remove_stale_partials(parent, base):
    """Delete `.<base>.partial-<pid>` directories left by runs that no longer exist (killed runs)."""
    prefix = f".{base}.partial-"
    for entry in os.listdir(parent):
        if entry.startswith(prefix) and entry[len(prefix):].isdigit():
            pid = int(entry[len(prefix):])
            try:
                os.kill(pid, 0)
                alive = pid != os.getpid()
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            if not alive:
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
