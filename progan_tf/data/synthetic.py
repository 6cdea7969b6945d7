"""The embedded default dataset: coloured shapes on gradients, made on the fly.

It needs no download, has real structure (edges, flat colour regions, smooth backgrounds, several object classes) and
is deterministic per index, so the demo and the tests train on the same images on every machine.
"""
import numpy as np

SHAPES = ("disc", "square", "triangle", "ring")  # label = index in this tuple
MAX_RESOLUTION = 64


def _gradient_background(rng, size):
    """Linear gradient between two random muted colours, in a random direction."""
    c0, c1 = rng.uniform(0.0, 0.55, size=(2, 3))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    t = (np.cos(angle) * (xs - 0.5) + np.sin(angle) * (ys - 0.5)) / np.sqrt(0.5) + 0.5  # [H, W]
    t = np.clip(t, 0.0, 1.0)[..., None]
    return c0 * (1.0 - t) + c1 * t  # [H, W, 3]


def _shape_mask(kind, size, cx, cy, radius, angle, supersample=4):
    """Anti-aliased coverage mask of one shape (supersampled, then box-averaged)."""
    n = size * supersample
    ys, xs = (np.mgrid[0:n, 0:n].astype(np.float64) + 0.5) / supersample
    dx, dy = xs - cx, ys - cy
    rx = np.cos(angle) * dx + np.sin(angle) * dy
    ry = -np.sin(angle) * dx + np.cos(angle) * dy
    if kind == "disc":
        inside = dx**2 + dy**2 <= radius**2
    elif kind == "ring":
        d2 = dx**2 + dy**2
        inside = (d2 <= radius**2) & (d2 >= (0.55 * radius) ** 2)
    elif kind == "square":
        half = radius / np.sqrt(2.0) * 1.15
        inside = (np.abs(rx) <= half) & (np.abs(ry) <= half)
    elif kind == "triangle":
        # Equilateral triangle inscribed in the circle of `radius`, rotated by angle.
        inside = np.ones_like(rx, dtype=bool)
        for k in range(3):
            a = 2.0 * np.pi * k / 3.0
            inside &= (np.cos(a) * rx + np.sin(a) * ry) <= radius * 0.5
    else:
        raise ValueError(f"unknown shape {kind!r}; expected one of {SHAPES}")
    return inside.reshape(size, supersample, size, supersample).mean(axis=(1, 3))  # [H, W]


def synthetic_image(index, resolution=MAX_RESOLUTION, seed=0):
    """One image of the embedded dataset -> (uint8 [resolution, resolution, 3], int class of the largest shape).

    The class is an index into SHAPES. The same (index, seed) always gives the same image. resolution: any side length
    >= 4; the dataset is designed at 64.
    """
    rng = np.random.default_rng([seed, index])
    image = _gradient_background(rng, resolution)
    num_shapes = rng.integers(1, 3)
    label = None
    for i in range(num_shapes):
        kind_id = int(rng.integers(len(SHAPES)))
        radius = resolution * (rng.uniform(0.22, 0.34) if i == 0 else rng.uniform(0.12, 0.2))
        cx, cy = rng.uniform(radius, resolution - radius, size=2)
        colour = rng.uniform(0.35, 1.0, size=3)
        colour[rng.integers(3)] = rng.uniform(0.85, 1.0)  # keep shapes saturated and bright
        mask = _shape_mask(SHAPES[kind_id], resolution, cx, cy, radius, rng.uniform(0, 2 * np.pi))
        image = image * (1.0 - mask[..., None]) + colour * mask[..., None]
        if label is None:
            label = kind_id
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8), label


def synthetic_images(count, resolution=MAX_RESOLUTION, seed=0, start=0):
    """Images start .. start + count - 1 of the embedded dataset -> (uint8 [count, R, R, 3], labels int64 [count])."""
    pairs = [synthetic_image(start + i, resolution, seed) for i in range(count)]
    images = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, resolution, resolution, 3), np.uint8)
    labels = np.array([p[1] for p in pairs], dtype=np.int64)
    return images, labels
