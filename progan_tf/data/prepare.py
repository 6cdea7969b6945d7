"""The preparation job of progan-prepare: images of a source -> a prepared dataset (data/tfrecord.py).

Images are decoded, squared and resized, turned into their 2x2 pyramid and encoded by a
pool of worker processes, and written round-robin into per-resolution shards. A dataset
is written into a hidden `.<name>.partial-<pid>` directory beside the target; the
manifest is its last file and the directory is renamed into place only when complete,
so a reader never accepts an interrupted dataset.
"""
import itertools
import json
import math
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time

import numpy as np

from progan_tf.data.sources import BadImage, SourceError, fit_square, open_image_source
from progan_tf.data.tfrecord import (FORMAT, MANIFEST, VERSION, encode_example, pyramid, resolutions_up_to,
                                     shard_path)
from progan_tf.resolutions import is_resolution

SHARD_TARGET_BYTES = 256 << 20  # automatic sharding: about this much per file
MAX_AUTO_SHARDS = 256  # per resolution, to keep open file handles bounded
PREFLIGHT_SAMPLE = 16  # images decoded before the run to check sizes
AUTO_POOL_SECONDS = 20  # estimated single-process work above which workers=0 starts a pool


def shards_per_level(num_images, max_resolution, num_channels, shards=0, images_per_shard=0):
    """{resolution: shard count}: `shards` everywhere, or ceil(N / images_per_shard), or ~256 MB per file."""
    result = {}
    for resolution in resolutions_up_to(max_resolution):
        if shards:
            count = shards
        elif images_per_shard:
            count = math.ceil(num_images / images_per_shard)
        else:
            level_bytes = num_images * resolution * resolution * num_channels
            count = min(math.ceil(level_bytes / SHARD_TARGET_BYTES), MAX_AUTO_SHARDS)
        result[resolution] = max(1, min(count, num_images))
    return result


def preflight(source, max_resolution=0, crop="center", allow_upscale=False, sample=PREFLIGHT_SAMPLE):
    """Decode the first few images to choose or check the maximum resolution before any heavy work.

    Args:
      source: an image source (progan_tf.data.sources).
      max_resolution: the wanted top resolution, or 0 for the largest power of two the
        sampled images reach.

    Returns:
      (the maximum resolution to prepare, seconds one sampled image took to load).

    Raises:
      SourceError: the sampled images are unreadable (and a size must be inferred), or all
        smaller than `max_resolution` without `allow_upscale`.
    """
    sides, shapes, begin, loaded = [], [], time.perf_counter(), 0
    for item in itertools.islice(source.items(), sample):
        loaded += 1
        try:
            image, _ = source.load(item)
        except BadImage:
            continue
        h, w = image.shape[:2]
        sides.append(min(h, w) if crop == "center" else max(h, w))
        shapes.append(f"{w}x{h}")
    seconds_per_image = (time.perf_counter() - begin) / max(loaded, 1)
    if not sides:
        if max_resolution:
            return max_resolution, seconds_per_image
        raise SourceError(f"the first {sample} images of {source.description} are unreadable, so the size cannot "
                          f"be inferred; check the source or set --max_resolution")
    native = 2 ** int(math.log2(max(sides)))
    if not max_resolution:
        if native < 4:
            raise SourceError(f"the images are {shapes[0]}, smaller than 4x4")
        return native, seconds_per_image
    if max(sides) < max_resolution and not allow_upscale:
        raise SourceError(f"the images are {shapes[int(np.argmax(sides))]} or smaller, below --max_resolution="
                          f"{max_resolution}; lower it (to {native}) or pass --allow_upscale")
    return max_resolution, seconds_per_image


def is_dataset(path):
    """Whether `path` holds a dataset this package wrote (its manifest names the format)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(out_dir, overwrite):
    """Refuse to write over anything but an empty directory or, with `overwrite`, a dataset of ours.

    Raises:
      FileExistsError: `out_dir` is a dataset and `overwrite` is False.
      ValueError: `out_dir` holds something else, which --overwrite never deletes.
    """
    if not os.path.exists(out_dir) or (os.path.isdir(out_dir) and not os.listdir(out_dir)):
        return
    if not is_dataset(out_dir):
        raise ValueError(f"{out_dir} exists and is not a progan_tf dataset (no manifest.json of format {FORMAT}); "
                         f"--overwrite replaces only datasets: choose another --out_dir or --name")
    if not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite to replace it")


def prepare_from_spec(spec, out_dir, dry_run=False, source_options=None, **options):
    """What progan-prepare does: open the source `spec` and prepare it into `out_dir` (or only plan it).

    Args:
      spec: a --source value (see sources.open_image_source, whose options `source_options` are).
      out_dir: the dataset directory to write.
      dry_run: check the source and return the plan (`plan_dataset`) instead of writing.
      **options: of `prepare_dataset`.

    Returns:
      The plan dict for a dry run, else the manifest.
    """
    if not dry_run:
        check_target(out_dir, options.get("overwrite", False))
    source = open_image_source(spec, **(source_options or {}))
    if dry_run:
        plan_keys = ("max_resolution", "crop", "allow_upscale", "num_images", "shards", "images_per_shard")
        return plan_dataset(source, **{k: v for k, v in options.items() if k in plan_keys})
    return prepare_dataset(source, out_dir, **options)


class DatasetWriter:
    """Writes records round-robin into per-resolution shards of a temporary directory.

    `commit` writes the manifest and renames the directory into place; `abort` removes it.
    """

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
        """Close the shards, write `manifest` (plus the shard list) and move the dataset into place.

        Returns:
          the full manifest.
        """
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
            writer.close()
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


# ----------------------------------------------------------------------------- parallel encoding

_WORK = None  # (source, resolution, crop, allow_upscale, keep_labels) in each worker


def _init_worker(work, in_pool=False):
    global _WORK
    _WORK = work
    if in_pool:  # the parent handles Ctrl-C and SIGTERM and ends the pool itself
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _encode(item):
    """Load, square, resize and pyramid one item: ({resolution: record}, None) or (None, (name, reason))."""
    source, resolution, crop, allow_upscale, keep_labels = _WORK
    try:
        image, label = source.load(item)
        top = fit_square(image, resolution, crop, allow_upscale)  # [R, R, C]
    except BadImage as e:
        return None, (source.item_name(item), str(e))
    label = (-1 if label is None else label) if keep_labels else None  # -1: no class (e.g. a root file)
    return {r: encode_example(level, label) for r, level in pyramid(top).items()}, None


def _make_pool(workers, work):
    """A process pool whose workers never fork from this (multi-threaded: TensorFlow, tqdm) process.

    A plain fork can copy a lock another thread holds and hang the child; the forkserver
    imports this module once in a clean process and forks the workers from there.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    return context.Pool(workers, initializer=_init_worker, initargs=(work, True))


def _bounded(items, slots, stop):
    """Yield items only while `slots` allows: keeps a streaming source from flooding the task queue.

    Runs in the pool's task thread; `stop` (with slots released) ends it, so the pool can be terminated.
    """
    for item in items:
        slots.acquire()
        if stop.is_set():
            return
        yield item


def plan_dataset(source, max_resolution=0, crop="center", allow_upscale=False, num_images=0, shards=0,
                 images_per_shard=0):
    """Resolve what prepare_dataset would do, after a quick check of the source (see `preflight`).

    Returns:
      dict with max_resolution, resolutions, num_channels, num_images (before skipping), shards and
      estimated_seconds (single-process work, from the sampled images).
    """
    if crop not in ("center", "pad"):
        raise ValueError(f"crop={crop!r} is unknown; choose center or pad")
    if max_resolution and not is_resolution(max_resolution):
        raise ValueError(f"max_resolution={max_resolution} is not a power of two >= 4")
    max_resolution, seconds_per_image = preflight(source, max_resolution, crop, allow_upscale)
    count = min(len(source), num_images) if num_images else len(source)
    return {"max_resolution": max_resolution, "resolutions": resolutions_up_to(max_resolution),
            "estimated_seconds": round(2 * seconds_per_image * count, 1),  # loading is about half the work
            "num_channels": source.num_channels, "num_images": count, "source": source.description,
            "shards": shards_per_level(count, max_resolution, source.num_channels, shards, images_per_shard)}


def prepare_dataset(source, out_dir, max_resolution=0, crop="center", allow_upscale=False, overwrite=False,
                    num_images=0, shards=0, images_per_shard=0, keep_labels=False, shuffle=True, seed=0,
                    workers=0, progress=True):
    """Encode `source` into a multi-resolution TFRecord dataset at `out_dir`.

    Args:
      source: an image source (progan_tf.data.sources).
      out_dir: the dataset directory to create (e.g. datasets/<name>).
      max_resolution: top resolution, a power of two >= 4; 0 = the largest the images reach.
      crop: "center" or "pad" (see sources.fit_square).
      allow_upscale: enlarge images smaller than max_resolution instead of skipping them.
      overwrite: replace an existing dataset at out_dir.
      num_images: use only the first this many images (0 = all).
      shards, images_per_shard: shard count per resolution (0 and 0 = about 256 MB per file).
      keep_labels: store each image's label (class folder, digit, tfds ClassLabel).
      shuffle: store the images in a random order (seeded by `seed`) when the source allows,
        as the official tool does, so that streaming reads are well mixed.
      workers: encoding processes (0 = one per CPU core, or 1 when the work is estimated
        under AUTO_POOL_SECONDS).
      progress: show a progress bar and the skipped files on stderr.

    Returns:
      the manifest dict, with "seconds" and "images_per_second" of this run.

    Raises:
      SourceError: the source is unusable or every image was skipped.
      FileExistsError: out_dir exists and overwrite is False.
    """
    check_target(out_dir, overwrite)
    plan = plan_dataset(source, max_resolution, crop, allow_upscale, num_images, shards, images_per_shard)
    if not workers:  # a pool costs a few seconds to start (its server imports TensorFlow): only when it pays
        workers = (os.cpu_count() or 1) if plan["estimated_seconds"] > AUTO_POOL_SECONDS else 1
    writer, start = DatasetWriter(out_dir, plan["shards"], overwrite), time.time()
    committed = False
    try:
        work = (source, plan["max_resolution"], crop, allow_upscale, keep_labels)
        skipped = _encode_all(_ordered_items(source, plan["num_images"], shuffle, seed), work, workers, writer,
                              progress, plan["num_images"])
        if not writer.num_images:
            raise SourceError(f"no usable images: all {len(skipped)} were skipped (first: "
                              f"{skipped[0]['item'] if skipped else '-'}: {skipped[0]['reason'] if skipped else '-'})")
        seconds = time.time() - start
        manifest = writer.commit({
            "name": os.path.basename(os.path.normpath(out_dir)), "source": source.description,
            "source_kind": source.kind, "max_resolution": plan["max_resolution"], "resolutions": plan["resolutions"],
            "num_channels": source.num_channels, "encoding": "raw uint8 HWC in Example feature 'image'",
            "downsampling": "2x2 mean of the stored level above, rounded half up: (a+b+c+d+2)//4",
            "crop": crop, "resize_filter": "lanczos", "allow_upscale": allow_upscale,
            "order": f"shuffled, seed {seed}" if shuffle and source.random_access else "source order",
            "labels": {"num_classes": len(source.label_names) if source.label_names else None,
                       "names": source.label_names} if keep_labels else None,
            "num_skipped": len(skipped), "skipped": skipped, "seconds": round(seconds, 3),
            "images_per_second": round((writer.num_images + len(skipped)) / max(seconds, 1e-9), 2)})
        committed = True
        return manifest
    finally:
        if not committed:
            writer.abort()


def _ordered_items(source, count, shuffle, seed):
    """The first `count` items of `source`, in a seeded random order when it allows reordering."""
    items = source.items()
    if not source.random_access:
        return itertools.islice(items, count)
    items = list(itertools.islice(items, count))
    return [items[i] for i in np.random.default_rng(seed).permutation(count)] if shuffle else items


def _encode_all(items, work, workers, writer, progress, total):
    """Encode `items` (in this process or a pool of `workers`) into `writer`; returns the skipped ones."""
    from tqdm import tqdm

    skipped, pool = [], None
    slots, stop = threading.Semaphore(workers * 32), threading.Event()
    bar = tqdm(total=total, unit="img", file=sys.stderr, disable=not progress, mininterval=1.0, smoothing=0.1)
    try:
        if workers == 1:
            _init_worker(work)
            results = map(_encode, items)
        else:
            pool = _make_pool(workers, work)
            results = pool.imap(_encode, _bounded(items, slots, stop), chunksize=8)  # ordered: deterministic
        for records, bad in results:
            if pool is not None:
                slots.release()
            if bad:
                skipped.append({"item": bad[0], "reason": bad[1]})
                if progress:
                    bar.write(f"skipped {bad[0]}: {bad[1]}", file=sys.stderr)
            else:
                writer.add(records)
            bar.update(1)
        return skipped
    finally:
        bar.close()
        if pool is not None:
            stop.set()
            slots.release(workers * 32 + 1)  # wake the task thread if it waits for a slot
            pool.terminate()
            pool.join()
