"""Multi-scale sliced Wasserstein distance (SWD), the paper's own metric (Section 5), as the official
metrics/sliced_wasserstein.py computes it: Laplacian pyramids down to 16x16, 128 7x7 neighbourhoods per image
and level, 512 projections. docs/METRICS.md has the method, small resolutions and memory use.
"""
import functools
import json
import os

import numpy as np
import tensorflow as tf

from progan_tf.metrics.pyramid import laplacian_pyramid

NHOOD_SIZE = 7  # neighbourhood side in pixels
NHOODS_PER_IMAGE = 128  # neighbourhoods per image per level
DIR_REPEATS = 4  # 4 x 128 = 512 projection directions per level
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16  # the coarsest pyramid level
INFO_FILE = "descriptors.json"


def pyramid_resolutions(resolution):
    """Pyramid level resolutions, finest first: [resolution, resolution / 2, ..., 16], or [resolution] below 16."""
    levels = [resolution]
    while levels[-1] // 2 >= MIN_RESOLUTION:
        levels.append(levels[-1] // 2)
    return levels


def neighbourhood_size(resolution):
    """Neighbourhood side at one level: 7, or the largest odd size that fits a smaller image."""
    return min(NHOOD_SIZE, resolution - 1 + resolution % 2)


def metric_names(resolution):
    """Result keys, in order: `SWDx1e3_<level>` for every level, then `SWDx1e3_avg`."""
    return [f"SWDx1e3_{r}" for r in pyramid_resolutions(resolution)] + ["SWDx1e3_avg"]


def random_centres(rng, num_images, nhoods_per_image, resolution, nhood_size):
    """int32 [num_images, nhoods_per_image, 2] (row, column) centres keeping each neighbourhood inside the image."""
    half = nhood_size // 2
    return rng.integers(half, resolution - half, size=(num_images, nhoods_per_image, 2), dtype=np.int32)


def extract_descriptors(level, centres, nhood_size):
    """Cut n x n neighbourhoods (n odd) around int32 [N, K, 2] centres out of a float32 [N, S, S, C] level:
    float32 [N * K, n * n * C], each row one neighbourhood in (row, column, channel) order."""
    half = nhood_size // 2
    offsets = tf.range(-half, half + 1)  # [n]
    rows = centres[:, :, 0, None, None] + offsets[:, None]  # [N, K, n, 1]
    cols = centres[:, :, 1, None, None] + offsets[None, :]  # [N, K, 1, n]
    batch = tf.range(tf.shape(centres)[0])[:, None, None, None]  # [N, 1, 1, 1]
    shape = tf.shape(rows + cols)
    index = tf.stack([tf.broadcast_to(batch, shape), tf.broadcast_to(rows, shape),
                      tf.broadcast_to(cols, shape)], axis=-1)  # [N, K, n, n, 3]
    patches = tf.gather_nd(level, index)  # [N, K, n, n, C]
    return tf.reshape(patches, [-1, nhood_size * nhood_size * level.shape[-1]])


@functools.lru_cache(maxsize=None)
def _describe_fn(resolution, num_channels, nhoods_per_image):
    """A traced function uint8 images [N, R, R, C], centres per level -> descriptors per level; cached, so every
    accumulator of one shape shares one trace."""
    levels = pyramid_resolutions(resolution)

    @tf.function(input_signature=[
        tf.TensorSpec([None, resolution, resolution, num_channels], tf.uint8),
        [tf.TensorSpec([None, nhoods_per_image, 2], tf.int32) for _ in levels]])
    def describe(images, centres):
        pyramid = laplacian_pyramid(tf.cast(images, tf.float32), len(levels))
        return [extract_descriptors(level, c, neighbourhood_size(r))  # [N * K, n * n * C]
                for level, c, r in zip(pyramid, centres, levels)]
    return describe


class SWDAccumulator:
    """Streams batches of images into the descriptors SWD needs, keeping nothing else.

    Descriptors stay in memory, or with `directory` go to one raw float32 file per level there (existing ones are
    replaced) and come back memory-mapped: the way to hold 16 384 images at 256^2 and above (6-9 GB per set) and to
    cache the reals' descriptors (`load_descriptors`). The same seed and batches give the same descriptors."""

    def __init__(self, resolution, num_channels=3, nhoods_per_image=NHOODS_PER_IMAGE, seed=0,
                 directory=None):
        if resolution < 1 or resolution & (resolution - 1):
            raise ValueError(f"SWD needs a power-of-two resolution, got {resolution}")
        self.resolution = resolution
        self.num_channels = num_channels
        self.nhoods_per_image = nhoods_per_image
        self.seed = seed
        self.directory = directory
        self.levels = pyramid_resolutions(resolution)
        self.num_images = 0
        self._rng = np.random.default_rng(seed)
        self._parts = [[] for _ in self.levels]
        self._describe = _describe_fn(resolution, num_channels, nhoods_per_image)
        if directory:
            os.makedirs(directory, exist_ok=True)
            for path in self._level_paths():
                open(path, "wb").close()

    def _level_paths(self):
        return [_level_path(self.directory, r) for r in self.levels]

    def update(self, images):
        """Add uint8 images [N, R, R, C] in [0, 255] (generator output: `progan_tf.images.to_uint8`)."""
        images = np.asarray(images)
        expected = (self.resolution, self.resolution, self.num_channels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"SWD expects uint8 images [N, {', '.join(map(str, expected))}], "
                             f"got {images.dtype} {images.shape}")
        centres = [random_centres(self._rng, len(images), self.nhoods_per_image, r, neighbourhood_size(r))
                   for r in self.levels]
        blocks = self._describe(images, centres)  # per level [N * K, n * n * C]
        for i, block in enumerate(blocks):
            if self.directory:
                with open(self._level_paths()[i], "ab") as f:
                    f.write(block.numpy().tobytes())
            else:
                self._parts[i].append(block.numpy())
        self.num_images += len(images)

    def descriptors(self):
        """The descriptors so far: one float32 array [num_images * K, n * n * C] per level, finest first.
        With a directory, also writes `descriptors.json` (what `load_descriptors` checks); read-only memmaps then."""
        if not self.num_images:
            raise ValueError("no images given to the SWD accumulator yet")
        if self.directory:
            info = {"resolution": self.resolution, "num_channels": self.num_channels,
                    "nhoods_per_image": self.nhoods_per_image, "seed": self.seed,
                    "num_images": self.num_images}
            tmp = os.path.join(self.directory, INFO_FILE + ".tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(info, f, indent=2, sort_keys=True)
            os.replace(tmp, os.path.join(self.directory, INFO_FILE))
            return load_descriptors(self.directory)[1]
        # Join level by level, dropping the pieces as we go, so the peak is one extra level.
        for parts in self._parts:
            parts[:] = [np.concatenate(parts)] if len(parts) > 1 else parts
        return [parts[0] for parts in self._parts]


def _level_path(directory, resolution):
    return os.path.join(directory, f"level_{resolution}.f32")


def load_descriptors(directory):
    """(info dict, read-only float32 memmaps per level, finest first) of what an `SWDAccumulator(directory=...)`
    wrote; FileNotFoundError if there is no complete descriptor set."""
    info_path = os.path.join(directory, INFO_FILE)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"no SWD descriptors in {directory} ({INFO_FILE} is missing)")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    rows = info["num_images"] * info["nhoods_per_image"]
    return info, [np.memmap(_level_path(directory, r), np.float32, mode="r",
                            shape=(rows, neighbourhood_size(r) ** 2 * info["num_channels"]))
                  for r in pyramid_resolutions(info["resolution"])]


def channel_moments(descriptors, num_channels, chunk=1 << 16):
    """Per-channel (mean, std), float64 [C] each, of float32 descriptors [M, n * n * C]; `chunk` rows at a time
    in float64 (a float64 copy of a whole 16k-image level would double its memory)."""
    total, total_sq = np.zeros(num_channels), np.zeros(num_channels)
    for start in range(0, len(descriptors), chunk):
        values = descriptors[start:start + chunk].reshape(-1, num_channels).astype(np.float64)  # [m*n*n, C]
        total += values.sum(axis=0)
        total_sq += np.einsum("ij,ij->j", values, values)
    count = descriptors.size // num_channels
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))


def random_directions(dim, repeats=DIR_REPEATS, per_repeat=DIRS_PER_REPEAT, seed=0):
    """Random unit projection directions, float64 [repeats, dim, per_repeat] (each column of unit length)."""
    dirs = np.random.default_rng(seed).standard_normal((repeats, dim, per_repeat))
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def _sorted_projections(descriptors, moments, directions):
    """float32 [P, M]: raw descriptors [M, D] (channel fastest), normalised with this set's `moments`, projected
    on directions [D, P] and sorted per direction. The normalisation is folded into the directions,
    (d - mean) / std . w = d . (w / std) - (mean / std) . w, so no normalised copy of the descriptors is made."""
    mean, std = moments
    reps = descriptors.shape[1] // len(mean)
    inv_std = np.tile(1.0 / std, reps)  # [D] in (row, column, channel) order
    scaled = (directions * inv_std[:, None]).astype(np.float32)  # [D, P]
    offset = (np.tile(mean, reps) * inv_std) @ directions  # [P]
    projections = scaled.T @ descriptors.T  # [P, M]
    # numpy's SIMD sort along contiguous rows is ~40x faster than tf.sort on CPU.
    projections.sort(axis=1)
    projections -= offset[:, None].astype(np.float32)
    return projections


def sliced_wasserstein(descriptors_a, descriptors_b, directions, num_channels=3):
    """Mean over all R * P `directions` [R, D, P] of the 1-D Wasserstein-1 distance between two equally large sets
    of raw descriptors [M, D], each normalised per channel with its own statistics."""
    if descriptors_a.shape != descriptors_b.shape:
        raise ValueError(f"SWD compares equally many descriptors; got {descriptors_a.shape} "
                         f"and {descriptors_b.shape} (use the same number of images on both sides)")
    moments_a = channel_moments(descriptors_a, num_channels)
    moments_b = channel_moments(descriptors_b, num_channels)
    dists = []
    # One repeat at a time: projecting is bound by reading the descriptors, so fewer,
    # wider passes are faster; 128 directions cost 2 x [128, M] floats (2 GB at M = 2M).
    for dirs in directions:
        proj_a = _sorted_projections(descriptors_a, moments_a, dirs)  # [P, M]
        proj_a -= _sorted_projections(descriptors_b, moments_b, dirs)  # [P, M], in place
        dists.append(np.mean(np.abs(proj_a, out=proj_a), dtype=np.float64))
    return float(np.mean(dists))


def swd_from_descriptors(descriptors_a, descriptors_b, resolution, num_channels=3, seed=0):
    """Multi-scale SWD between two descriptor pyramids (`SWDAccumulator.descriptors()`): {`SWDx1e3_<level>`, ...,
    `SWDx1e3_avg`}, all x1e3; `seed` draws fresh projection directions per level."""
    names = metric_names(resolution)
    rng = np.random.default_rng(seed)
    values = []
    for desc_a, desc_b in zip(descriptors_a, descriptors_b):
        directions = random_directions(desc_a.shape[1], seed=rng.integers(1 << 31))
        values.append(1e3 * sliced_wasserstein(desc_a, desc_b, directions, num_channels))
    return dict(zip(names, values + [float(np.mean(values))]))


def sliced_wasserstein_distance(images_a, images_b, batch_size=256, seed=0):
    """Multi-scale SWD (as `swd_from_descriptors`) between two in-memory sets of equally many uint8
    [N, R, R, C] images. Both sets use the same neighbourhood positions, so swapping them gives the same value."""
    pyramids = []
    for images in (images_a, images_b):
        acc = SWDAccumulator(images.shape[1], images.shape[3], seed=seed)
        for start in range(0, len(images), batch_size):
            acc.update(images[start:start + batch_size])
        pyramids.append(acc.descriptors())
    return swd_from_descriptors(*pyramids, images_a.shape[1], images_a.shape[3], seed=seed)

