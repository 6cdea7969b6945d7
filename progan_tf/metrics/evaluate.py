"""Evaluate a generator against real images: SWD, MS-SSIM and FID, with cached real statistics (progan-eval and the
trainer's periodic evaluation). A generator is any function latents float32 [N, latent_size] -> images
[N, R, R, C] in [-1, 1]; real images any iterator of uint8 batches. The reals' statistics depend only on the data,
resolution, image count and seed, so with a `cache_dir` they are computed once and the reals not read again.
"""
import contextlib
import json
import os
import tempfile
import time

import numpy as np

from progan_tf.metrics import fid, ms_ssim, swd
from progan_tf.images import to_uint8

METRICS = ("swd", "msssim", "fid")


def generated_batches(generate_fn, num_images, latent_size, batch_size=64, seed=0):
    """uint8 batches [n, R, R, C] of `generate_fn(z)`, z ~ N(0, I) from `seed`, `num_images` in all."""
    rng = np.random.default_rng(seed)
    for start in range(0, num_images, batch_size):
        latents = rng.standard_normal((min(batch_size, num_images - start), latent_size)).astype(np.float32)
        yield to_uint8(generate_fn(latents))


def real_batches(dataset, resolution, batch_size=64, seed=0):
    """Shuffled uint8 batches [batch_size, R, R, C] of a `progan_tf.data.pipeline` dataset, endlessly (the source
    repeats)."""
    for batch in dataset.batches(resolution, batch_size, seed=seed).as_numpy_iterator():
        yield to_uint8(batch)


def take_images(batches, num_images):
    """The first `num_images` images of an iterator of batches, batch by batch; ValueError if it ends too early."""
    seen = 0
    for batch in batches:
        batch = batch[:num_images - seen]
        seen += len(batch)
        yield batch
        if seen == num_images:
            return
    raise ValueError(f"the real images ran out after {seen} of {num_images}")


def validate_metrics(metrics):
    """Check metric names; returns them as a tuple in canonical order."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(METRICS)}")
    return tuple(m for m in METRICS if m in metrics)


class _Statistics:
    """The accumulators of the requested metrics, fed from one pass over a stream of images."""

    def __init__(self, metrics, resolution, num_channels, seed, feature_fn, swd_dir=None):
        self.swd = (swd.SWDAccumulator(resolution, num_channels, seed=seed, directory=swd_dir)
                    if "swd" in metrics else None)
        self.msssim = ms_ssim.MSSSIMAccumulator(seed=seed) if "msssim" in metrics else None
        self.fid = fid.FIDAccumulator(feature_fn) if "fid" in metrics else None

    def consume(self, batches):
        for images in batches:
            for acc in (self.swd, self.msssim, self.fid):
                if acc is not None:
                    acc.update(images)


def _cache_paths(cache_dir, resolution, num_images, seed, feature_name):
    stem = os.path.join(cache_dir, f"reals_{resolution}px_{num_images}img_seed{seed}")
    return {"swd": stem + "_swd", "msssim": stem + "_msssim.json", "fid": f"{stem}_fid_{feature_name}.npz"}


def _load_cached(metric, path):
    """A cached real statistic, or None when absent."""
    if metric == "swd":
        try:
            return swd.load_descriptors(path)[1]
        except FileNotFoundError:
            return None
    if not os.path.isfile(path):
        return None
    if metric == "msssim":
        with open(path, encoding="utf-8") as f:
            return json.load(f)["msssim"]
    with np.load(path) as stats:
        return stats["mean"], stats["covariance"]


def _store(metric, path, value):
    """Write one real statistic atomically (SWD descriptors are already in place)."""
    if metric == "swd":
        return
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        if metric == "msssim":
            f.write(json.dumps({"msssim": value}).encode())
        else:
            np.savez(f, mean=value[0], covariance=value[1])
    os.replace(tmp, path)


def real_statistics(real_batches, metrics, num_images, resolution, num_channels=3, seed=0, cache_dir=None,
                    feature_fn=None, feature_name="inception"):
    """{metric: statistic} of the real images, from `cache_dir` where possible: "swd" descriptors per level,
    "msssim" a float, "fid" (mean, covariance). `real_batches` is read only if something is not cached; `feature_name`
    names the FID extractor in its cache file."""
    paths = _cache_paths(cache_dir, resolution, num_images, seed, feature_name) if cache_dir else {}
    stats = {m: _load_cached(m, paths[m]) for m in metrics} if cache_dir else dict.fromkeys(metrics)
    missing = [m for m in metrics if stats[m] is None]
    if missing:
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
        acc = _Statistics(missing, resolution, num_channels, seed, feature_fn, swd_dir=paths.get("swd"))
        acc.consume(take_images(real_batches, num_images))
        fresh = {"swd": acc.swd and acc.swd.descriptors(), "msssim": acc.msssim and acc.msssim.result(),
                 "fid": acc.fid and acc.fid.mean_and_covariance()}
        for metric in missing:
            stats[metric] = fresh[metric]
            if cache_dir:
                _store(metric, paths[metric], fresh[metric])
    return stats


def evaluate_generator(generate_fn, real_batches, metrics, num_images, resolution, latent_size, num_channels=3,
                       batch_size=64, seed=0, cache_dir=None, feature_fn=None, feature_name="inception"):
    """Score a generator against real images.

    `real_batches` is read only when the cache lacks something. `num_images` per side (the paper: 16 384 for SWD;
    MS-SSIM scores num_images // 2 pairs). `seed` draws latents, neighbourhoods and pairs: the same seed, the same
    numbers. `cache_dir` also holds the generated images' SWD descriptors while they are compared; `feature_fn` is the
    FID extractor (`fid.inception_feature_extractor(path)`). Returns `SWDx1e3_<level>`..., `SWDx1e3_avg`, `MSSSIM`
    (generated pairs), `MSSSIM_reals` (real pairs, for reference), `FID`, as requested, plus `num_images`,
    `resolution` and `seconds`."""
    metrics = validate_metrics(metrics)
    if "fid" in metrics and feature_fn is None:
        raise ValueError("FID needs a feature extractor (fid.inception_feature_extractor(weights_path))")
    start = time.perf_counter()
    reals = real_statistics(real_batches, metrics, num_images, resolution, num_channels, seed, cache_dir,
                            feature_fn, feature_name)
    with tempfile.TemporaryDirectory(dir=cache_dir) if cache_dir else contextlib.nullcontext() as scratch:
        fakes = _Statistics(metrics, resolution, num_channels, seed, feature_fn,
                            swd_dir=scratch and os.path.join(scratch, "swd"))
        fakes.consume(generated_batches(generate_fn, num_images, latent_size, batch_size, seed))
        result = {}
        if "swd" in metrics:
            result.update(swd.swd_from_descriptors(reals["swd"], fakes.swd.descriptors(), resolution,
                                                   num_channels, seed))
    if "msssim" in metrics:
        result.update(MSSSIM=fakes.msssim.result(), MSSSIM_reals=reals["msssim"])
    if "fid" in metrics:
        result["FID"] = fid.frechet_distance(*reals["fid"], *fakes.fid.mean_and_covariance())
    return {**result, "num_images": num_images, "resolution": resolution,
            "seconds": time.perf_counter() - start}


def format_table(result):
    """A two-column text table of a result dict, one metric a line."""
    width = max(len(k) for k in result)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 10}"]
    for key, value in result.items():
        lines.append(f"{key:<{width}}  {value:.4f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return "\n".join(lines)


def evaluate_model(model, data_dir="", metrics=("swd", "msssim"), num_images=16384, resolution=None,
                   batch_size=64, seed=0, inception_weights="", cache_dir="", synthetic_images=4096, data_seed=0,
                   print_fn=print):
    """What progan-eval does: score a run's Gs or an export (`sampling.open_sampler`) against a prepared dataset
    (empty `data_dir`: the embedded synthetic shapes). `num_images` is capped at the data's size; `cache_dir`
    defaults to <data_dir>/metrics_cache (none for synthetic data). Returns `evaluate_generator`'s dict with "model"
    and "data"."""
    from progan_tf import sampling
    from progan_tf.data.pipeline import ArrayDataset, open_dataset
    from progan_tf.data.synthetic import synthetic_images as make_images
    sampler = sampling.open_sampler(model, resolution)
    if data_dir:
        dataset = open_dataset(data_dir, max_resolution=sampler.resolution)
        cache_dir = cache_dir or os.path.join(data_dir, "metrics_cache")
    else:
        dataset = ArrayDataset(make_images(synthetic_images, sampler.resolution, seed=data_seed)[0], name="synthetic")
    count = min(num_images, dataset.num_images)
    if count < num_images:
        print_fn(f"note: the dataset has {dataset.num_images} images; evaluating {count} a side")
    feature_fn = fid.inception_feature_extractor(inception_weights) if "fid" in metrics else None
    result = evaluate_generator(
        lambda z: sampler.images_fn(z) * 2.0 - 1.0,  # the sampler gives [0, 1]
        real_batches(dataset, sampler.resolution, batch_size, seed), metrics, count, sampler.resolution,
        sampler.latent_size, num_channels=dataset.num_channels, batch_size=batch_size, seed=seed,
        cache_dir=cache_dir or None, feature_fn=feature_fn)
    return {"model": model, "data": data_dir or "synthetic", **result}
