"""The preparation job of progan-prepare: images of a source -> a prepared dataset (data/tfrecord.py).

Images are decoded, squared and resized, turned into their 2x2 pyramid and encoded by a pool of worker processes, and
written round-robin into per-resolution shards. A dataset is written into a hidden `.<name>.partial-<pid>` directory
beside the target; the manifest is its last file and the directory is renamed into place only when complete, so a
reader never accepts an interrupted dataset.
"""
import contextlib
import hashlib
import itertools
import math
import os
import sys
import time

import numpy as np

from progan_tf.data.ordered_pool import ordered_map
from progan_tf.data.sources import BadImage, SourceError, fit_square, open_image_source
from progan_tf.data.tfrecord import DatasetWriter, check_target, encode_example, pyramid
from progan_tf.resolutions import is_resolution, resolutions_between

SHARD_TARGET_BYTES = 256 << 20  # automatic sharding: about this much per file
MAX_AUTO_SHARDS = 256  # per resolution, to keep open file handles bounded
PREFLIGHT_SAMPLE = 16  # images decoded before the run to check sizes
AUTO_POOL_SECONDS = 20  # estimated single-process work above which workers=0 starts a pool


def shards_per_level(num_images, max_resolution, num_channels, shards=0, images_per_shard=0):
    """{resolution: shard count}: `shards` everywhere, or ceil(N / images_per_shard), or ~256 MB per file."""
    result = {}
    for resolution in resolutions_between(4, max_resolution):
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

    Returns (the maximum resolution to prepare, seconds one sampled image took to load); max_resolution 0 picks the
    largest power of two the sampled images reach. Raises SourceError if the sampled images are unreadable (and a
    size must be inferred), or all smaller than `max_resolution` without `allow_upscale`.
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
        raise SourceError("the first {sample} images of {description} are unreadable, so the size cannot be "
                          "inferred; check the source or set {max_resolution}", sample=sample,
                          description=source.description)
    native = 2 ** int(math.log2(max(sides)))
    if not max_resolution:
        if native < 4:
            raise SourceError("the images are {shape}, smaller than 4x4", shape=shapes[0])
        return native, seconds_per_image
    if max(sides) < max_resolution and not allow_upscale:
        raise SourceError("the images are {shape} or smaller, below {max_resolution}={value}; lower it (to "
                          "{native}) or pass {allow_upscale}", shape=shapes[int(np.argmax(sides))],
                          value=max_resolution, native=native)
    return max_resolution, seconds_per_image


def prepare_from_spec(spec, out_dir, dry_run=False, source_options=None, **options):
    """What progan-prepare does: open the source `spec` and prepare it into `out_dir` (or only plan it).

    spec: a --source value (see sources.open_image_source, whose options `source_options` are); **options are
    `prepare_dataset`'s. Returns the manifest, or with dry_run the plan dict (`plan_dataset`) without writing.
    """
    if not dry_run:
        check_target(out_dir, options.get("overwrite", False))
    source = open_image_source(spec, **(source_options or {}))
    if dry_run:
        plan_keys = ("max_resolution", "crop", "allow_upscale", "num_images", "shards", "images_per_shard")
        return plan_dataset(source, **{k: v for k, v in options.items() if k in plan_keys})
    return prepare_dataset(source, out_dir, **options)


_WORK = None  # (source, resolution, crop, allow_upscale, keep_labels) in each worker


def _init_worker(work):
    global _WORK
    _WORK = work


def _encode(item):
    """Load, square, resize and pyramid one item: (name, {resolution: record}, None) or (name, None, reason)."""
    source, resolution, crop, allow_upscale, keep_labels = _WORK
    name = source.item_name(item)
    try:
        image, label = source.load(item)
        top = fit_square(image, resolution, crop, allow_upscale)  # [R, R, C]
    except BadImage as e:
        return name, None, str(e)
    label = (-1 if label is None else label) if keep_labels else None  # -1: no class (e.g. a root file)
    return name, {r: encode_example(level, label) for r, level in pyramid(top).items()}, None


def plan_dataset(source, max_resolution=0, crop="center", allow_upscale=False, num_images=0, shards=0,
                 images_per_shard=0):
    """Resolve what prepare_dataset would do, after a quick check of the source (see `preflight`).

    Returns a dict with max_resolution, resolutions, num_channels, num_images (before skipping), shards and
    estimated_seconds (single-process work, from the sampled images).
    """
    if crop not in ("center", "pad"):
        raise ValueError(f"crop={crop!r} is unknown; choose center or pad")
    if max_resolution and not is_resolution(max_resolution):
        raise ValueError(f"max_resolution={max_resolution} is not a power of two >= 4")
    max_resolution, seconds_per_image = preflight(source, max_resolution, crop, allow_upscale)
    count = min(len(source), num_images) if num_images else len(source)
    return {"max_resolution": max_resolution, "resolutions": resolutions_between(4, max_resolution),
            "estimated_seconds": round(2 * seconds_per_image * count, 1),  # loading is about half the work
            "num_channels": source.num_channels, "num_images": count, "source": source.description,
            "shards": shards_per_level(count, max_resolution, source.num_channels, shards, images_per_shard)}


def prepare_dataset(source, out_dir, max_resolution=0, crop="center", allow_upscale=False, overwrite=False,
                    num_images=0, shards=0, images_per_shard=0, keep_labels=False, shuffle=True, seed=0,
                    workers=0, progress=True):
    """Encode `source` into a multi-resolution TFRecord dataset at `out_dir` (e.g. datasets/<name>).

    Returns the manifest dict, with "seconds" and "images_per_second" of this run. max_resolution: a power of two >= 4;
    0 = the largest the images reach. crop: "center" or "pad" (see sources.fit_square). allow_upscale enlarges images
    smaller than max_resolution instead of skipping them. num_images: only the first this many (0 = all). shards,
    images_per_shard: shard count per resolution (0 and 0 = about 256 MB per file). keep_labels stores each image's
    label (class folder, digit, tfds ClassLabel). shuffle stores the images in a random order (seeded by `seed`) when
    the source allows, as the official tool does, so that streaming reads are well mixed. workers: encoding processes
    (0 = one per CPU core, or 1 when the work is estimated under AUTO_POOL_SECONDS). progress shows a progress bar and
    the skipped files on stderr. Raises SourceError if the source is unusable or every image was skipped,
    ConfigError if out_dir holds anything but a dataset of ours, or one and overwrite is False.
    """
    check_target(out_dir, overwrite)
    plan = plan_dataset(source, max_resolution, crop, allow_upscale, num_images, shards, images_per_shard)
    if not workers:  # a pool costs a few seconds to start (its server imports TensorFlow): only when it pays
        workers = (os.cpu_count() or 1) if plan["estimated_seconds"] > AUTO_POOL_SECONDS else 1
    writer, start = DatasetWriter(out_dir, plan["shards"], overwrite), time.time()
    try:
        work = (source, plan["max_resolution"], crop, allow_upscale, keep_labels)
        skipped, duplicates = _encode_all(_ordered_items(source, plan["num_images"], shuffle, seed), work,
                                          workers, writer, progress, plan["num_images"])
        if duplicates and progress:
            print(f"{len(duplicates)} duplicate images (kept; listed in the manifest), e.g. {duplicates[0]['item']} "
                  f"= {duplicates[0]['same_as']}", file=sys.stderr)
        if not writer.num_images:
            raise SourceError("no usable images: all {count} were skipped (first: {item}: {reason})",
                              count=len(skipped), item=skipped[0]["item"] if skipped else "-",
                              reason=skipped[0]["reason"] if skipped else "-")
        seconds = time.time() - start
        return writer.commit(_manifest(source, out_dir, plan, crop, allow_upscale, shuffle, seed, keep_labels,
                                       skipped, duplicates, seconds, writer.num_images))
    except BaseException:
        writer.abort()
        raise


def _manifest(source, out_dir, plan, crop, allow_upscale, shuffle, seed, keep_labels, skipped, duplicates,
              seconds, written):
    """What manifest.json says of a dataset besides its shards (which the writer adds)."""
    return {
        "name": os.path.basename(os.path.normpath(out_dir)), "source": source.description,
        "source_kind": source.kind, "max_resolution": plan["max_resolution"], "resolutions": plan["resolutions"],
        "num_channels": source.num_channels, "encoding": "raw uint8 HWC in Example feature 'image'",
        "downsampling": "2x2 mean of the stored level above, rounded half up: (a+b+c+d+2)//4",
        "crop": crop, "resize_filter": "lanczos", "allow_upscale": allow_upscale,
        "order": f"shuffled, seed {seed}" if shuffle and source.random_access else "source order",
        "labels": {"num_classes": len(source.label_names) if source.label_names else None,
                   "names": source.label_names} if keep_labels else None,
        "num_skipped": len(skipped), "skipped": skipped, "num_duplicates": len(duplicates),
        "duplicates": duplicates, "seconds": round(seconds, 3),
        "images_per_second": round((written + len(skipped)) / max(seconds, 1e-9), 2)}


def _ordered_items(source, count, shuffle, seed):
    """The first `count` items of `source`, in a seeded random order when it allows reordering."""
    items = source.items()
    if not source.random_access:
        return itertools.islice(items, count)
    items = list(itertools.islice(items, count))
    return [items[i] for i in np.random.default_rng(seed).permutation(count)] if shuffle else items


def _encode_all(items, work, workers, writer, progress, total):
    """Encode `items` (in this process or a pool of `workers`) into `writer` -> (skipped, duplicates).

    skipped: [{item, reason}]; duplicates: [{item, same_as}], items whose top level is, pixel for pixel, one written
    before (copies, links); they are kept, and reported.
    """
    from tqdm import tqdm

    skipped, duplicates, seen = [], [], {}
    if workers == 1:
        _init_worker(work)
        results = (_encode(item) for item in items)
    else:  # ordered: deterministic
        results = ordered_map(_encode, items, workers, _init_worker, (work,))
    with contextlib.closing(results), tqdm(total=total, unit="img", file=sys.stderr, disable=not progress,
                                           mininterval=1.0, smoothing=0.1) as bar:  # closing ends the workers
        for name, records, reason in results:
            if reason:
                skipped.append({"item": name, "reason": reason})
                if progress:
                    bar.write(f"skipped {name}: {reason}", file=sys.stderr)
            else:
                digest = hashlib.sha1(records[max(records)]).hexdigest()
                if digest in seen:
                    duplicates.append({"item": name, "same_as": seen[digest]})
                seen.setdefault(digest, name)
                writer.add(records)
            bar.update(1)
    return skipped, duplicates
