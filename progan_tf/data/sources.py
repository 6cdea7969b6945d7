"""Raw image sources for progan-prepare: a folder, tfds, MNIST IDX, CIFAR-10 binary, synthetic, emoji.

Every source is a small picklable object with the same interface: kind and description (for the manifest);
num_channels (of every loaded image, 1 or 3); label_names (class names, or None without labels); random_access (True
when items() can be reordered: a list); len(source); items() (iterable of small picklable work items); load(item) ->
(uint8 [H, W, C], label int or None), raising BadImage; item_name(item) (how a skipped item is named in the manifest).
`load` runs in worker processes, so it uses only NumPy and Pillow. Images are then squared and resized by
`fit_square`, the same for every source.
"""
import gzip
import io
import os

import numpy as np
from PIL import Image, ImageOps

from progan_tf.errors import ConfigError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CROP_MODES = ("center", "pad")


class BadImage(Exception):
    """One unreadable or unusable image: skipped, counted and listed, never fatal."""


class SourceError(ConfigError):
    """The source as a whole is unusable (missing, empty, wrong format): one line, options named as `{field}`."""


def to_array(image, num_channels=3):
    """A Pillow image as uint8 [H, W, num_channels].

    16-bit and 32-bit integer greyscale are scaled to 8 bits (round(v / 257)); transparency (RGBA, LA, palette with a
    transparent colour) is composited over black; greyscale is repeated into RGB and colour is reduced to luma
    (ITU-R 601) for 1 channel.
    """
    image = ImageOps.exif_transpose(image)  # camera JPEGs store rotation as a tag
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)  # [H, W] in 0..65535
        image = Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.round(np.asarray(image)), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA")).astype(np.uint32)  # [H, W, 4]
        rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255  # over black, rounded
        image = Image.fromarray(rgb.astype(np.uint8), "RGB")
    image = image.convert("RGB" if num_channels == 3 else "L")
    array = np.asarray(image, dtype=np.uint8)
    return array if array.ndim == 3 else array[..., None]


def decode_image(data, num_channels=3):
    """Encoded bytes (PNG, JPEG, WebP, BMP, ...) as uint8 [H, W, C]; raises BadImage."""
    if not data:
        raise BadImage("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decode now: truncated data fails here, not later
            return to_array(image, num_channels)
    except BadImage:
        raise
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError ...
        raise BadImage(f"unreadable image ({type(e).__name__}: {e})") from None


def fit_square(image, resolution, crop="center", allow_upscale=False):
    """uint8 [H, W, C] -> uint8 [resolution, resolution, C]: centre-crop or pad to a square, then resize with Lanczos.

    crop "center" keeps the central min(H, W) square; "pad" adds black borders around the image to a max(H, W)
    square. Raises BadImage if the square is smaller than `resolution` and allow_upscale is False.
    """
    h, w, c = image.shape
    if crop == "center":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[top:top + side, left:left + side]  # [S, S, C]
    elif crop == "pad":
        side = max(h, w)
        top, left = (side - h) // 2, (side - w) // 2
        square = np.zeros((side, side, c), np.uint8)
        square[top:top + h, left:left + w] = image
    else:
        raise ValueError(f"crop={crop!r} is unknown; choose one of {CROP_MODES}")
    if side < resolution and not allow_upscale:
        raise BadImage(f"{w}x{h} is smaller than {resolution}x{resolution} (allow_upscale enlarges it)")
    if side == resolution:
        return np.ascontiguousarray(square)
    pil = Image.fromarray(square[..., 0] if c == 1 else square, "L" if c == 1 else "RGB")
    resized = np.asarray(pil.resize((resolution, resolution), Image.LANCZOS), dtype=np.uint8)
    return resized if resized.ndim == 3 else resized[..., None]


class FolderSource:
    """Every PNG, JPEG, WebP and BMP file under `root`, recursively, in sorted path order.
    Labels are the first-level sub-folder of each file (class folders, sorted by name)."""
    kind = "folder"
    random_access = True

    def __init__(self, root):
        if not os.path.isdir(root):
            raise SourceError("{source}={root} is not a directory of images", root=root)
        self.root = root
        paths = []
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            paths += [os.path.relpath(os.path.join(directory, f), root) for f in sorted(files)
                      if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not paths:
            raise SourceError("{source}={root} holds no {kinds} files", root=root,
                              kinds="/".join(e[1:] for e in IMAGE_EXTENSIONS))
        self.paths = paths
        self.label_names = sorted({p.split(os.sep)[0] for p in paths if os.sep in p}) or None
        self.num_channels = 3
        self.description = os.path.abspath(root)

    def __len__(self):
        return len(self.paths)

    def items(self):
        return list(self.paths)

    def item_name(self, item):
        return item

    def load(self, item):
        try:
            with open(os.path.join(self.root, item), "rb") as f:
                data = f.read()
        except OSError as e:
            raise BadImage(f"cannot read ({e.strerror})") from None
        label = self.label_names.index(item.split(os.sep)[0]) if self.label_names and os.sep in item else None
        return decode_image(data, self.num_channels), label


def _read_maybe_gz(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read()


def _find(directory, names, what):
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    raise SourceError("{directory} has no {what} ({names}[.gz])", directory=directory, what=what,
                      names=" or ".join(names))


def read_idx(path):
    """An IDX file (the MNIST format: big-endian header, then the data) as a NumPy array."""
    data = _read_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SourceError("{path} is not an unsigned-byte IDX file", path=path)
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(data) != offset + int(np.prod(shape)):
        raise SourceError("{path} is truncated: header says {shape}, file has {size} bytes of data", path=path,
                          shape=shape, size=len(data) - offset)
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


class IndexedSource:
    """Base of the sources whose items are the numbers 0 .. count - 1 (random access)."""
    random_access = True

    def __len__(self):
        return self.count

    def items(self):
        return range(self.count)

    def item_name(self, item):
        return f"#{item}"


class MnistSource(IndexedSource):
    """MNIST IDX files, padded from 28x28 to 32x32 as in the paper's dataset tool.

    With `rgb`, the paper's MNIST-RGB: each image stacks three random digits as its R, G and B channels
    (label 100*r + 10*g + b), `count` images, chosen per index from `seed`.
    """
    kind = "mnist"

    def __init__(self, directory, split="train", rgb=False, count=0, seed=0):
        if not os.path.isdir(directory):
            raise SourceError("mnist:{directory} is not a directory", directory=directory)
        prefix = {"train": "train", "test": "t10k"}[split]
        images = read_idx(_find(directory, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"],
                                f"MNIST {split} images"))
        labels = read_idx(_find(directory, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"],
                                f"MNIST {split} labels"))
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise SourceError("MNIST images {images} and labels {labels} do not match", images=images.shape,
                              labels=labels.shape)
        if not len(images):
            raise SourceError("mnist:{directory} holds no images", directory=directory)
        self.images = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # [N, 32, 32]
        self.labels = labels.astype(np.int64)
        self.rgb, self.seed = rgb, seed
        self.count = (count or 1_000_000) if rgb else len(images)
        self.num_channels = 3 if rgb else 1
        self.label_names = None if rgb else [str(d) for d in range(10)]
        self.description = f"mnist:{os.path.abspath(directory)}:{split}" + (f" rgb seed={seed}" if rgb else "")

    def load(self, item):
        if not self.rgb:
            return self.images[item][..., None], int(self.labels[item])
        picks = np.random.default_rng([self.seed, item]).integers(len(self.images), size=3)
        label = int(self.labels[picks] @ np.array([100, 10, 1]))
        return np.stack([self.images[p] for p in picks], axis=-1), label


class Cifar10Source(IndexedSource):
    """CIFAR-10 binary batches (data_batch_1..5.bin or test_batch.bin; not the Python pickles)."""
    kind = "cifar10"
    RECORD = 1 + 32 * 32 * 3  # label byte, then R, G and B planes

    def __init__(self, directory, split="train"):
        if os.path.isdir(os.path.join(directory, "cifar-10-batches-bin")):
            directory = os.path.join(directory, "cifar-10-batches-bin")
        if not os.path.isdir(directory):
            raise SourceError("cifar10:{directory} is not a directory", directory=directory)
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
        paths = [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]
        if not paths:
            raise SourceError("cifar10:{directory} holds none of {names} (the binary version)", directory=directory,
                              names=", ".join(names))
        records = []
        for path in paths:
            data = np.fromfile(path, np.uint8)
            if data.size % self.RECORD:
                raise SourceError("{path} is not a CIFAR-10 binary batch ({size} bytes is not a multiple of {record})",
                                  path=path, size=data.size, record=self.RECORD)
            records.append(data.reshape(-1, self.RECORD))
        records = np.concatenate(records)  # [N, 3073]
        if not len(records):
            raise SourceError("cifar10:{directory} holds no images", directory=directory)
        self.labels = records[:, 0].astype(np.int64)
        self.images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # [N, 32, 32, 3]
        self.count = len(self.images)
        meta = os.path.join(directory, "batches.meta.txt")
        self.label_names = ([line.strip() for line in open(meta) if line.strip()]
                            if os.path.isfile(meta) else [str(i) for i in range(10)])
        self.num_channels = 3
        self.description = f"cifar10:{os.path.abspath(directory)}:{split}"

    def load(self, item):
        return np.ascontiguousarray(self.images[item]), int(self.labels[item])


class SyntheticSource(IndexedSource):
    """The embedded synthetic shapes (progan_tf.data.synthetic), rendered at `resolution`."""
    kind = "synthetic"

    def __init__(self, count, resolution=64, seed=0):
        from progan_tf.data import synthetic
        if count < 1:
            raise SourceError("synthetic: {num_images} must be >= 1, got {count}", count=count)
        self.count, self.resolution, self.seed = count, resolution, seed
        self.num_channels = 3
        self.label_names = list(synthetic.SHAPES)
        self.description = f"synthetic seed={seed}"

    def load(self, item):
        from progan_tf.data.synthetic import synthetic_image
        return synthetic_image(item, self.resolution, self.seed)


class TfdsSource:
    """A tfds dataset already prepared in `data_dir` (or prepared from `manual_dir`); never downloads.
    Images are read still encoded and decoded by the workers, in parallel."""
    kind = "tfds"
    random_access = False

    def __init__(self, name, split="train", data_dir=None, manual_dir=None):
        import tensorflow_datasets as tfds
        try:
            builder = tfds.builder(name, data_dir=data_dir or None)
        except Exception as e:  # DatasetNotFoundError, bad config name, ...
            raise SourceError("tfds:{name}: {reason}", name=name, reason=str(e).splitlines()[0]) from None
        if not _tfds_prepared(builder):
            if not manual_dir:
                raise SourceError("tfds:{name} is not prepared in {data_dir}; give {tfds_data_dir} where it is, or "
                                  "{tfds_manual_dir} with its manual download (progan-prepare never downloads)",
                                  name=name, data_dir=builder.data_dir)
            config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
            try:
                builder.download_and_prepare(download_config=config)
            except Exception as e:  # tfds raises AssertionError, FileNotFoundError, ... for a bad manual_dir
                raise SourceError("tfds:{name} could not be prepared from {tfds_manual_dir}={manual_dir}: {reason}",
                                  name=name, manual_dir=manual_dir, reason=str(e).splitlines()[0]) from None
        features = builder.info.features
        image_keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
        if not image_keys:
            raise SourceError("tfds:{name} has no image feature", name=name)
        self.image_key = image_keys[0]
        label = features["label"] if "label" in features.keys() else None
        self.label_key = "label" if isinstance(label, tfds.features.ClassLabel) else None
        self.label_names = list(label.names) if self.label_key else None
        self.num_channels = features[self.image_key].shape[-1] or 3
        try:
            self.count = builder.info.splits[split].num_examples
        except Exception:
            raise SourceError("tfds:{name} has no split {split!r}; it has {splits}", name=name, split=split,
                              splits=list(builder.info.splits)) from None
        if not self.count:
            raise SourceError("tfds:{name}:{split} holds no images", name=name, split=split)
        self.name, self.split, self.data_dir = name, split, data_dir
        self.description = f"tfds:{name}:{split}"

    def __len__(self):
        return self.count

    def items(self):
        """(encoded image bytes, label) pairs, streamed in the dataset's own order."""
        import tensorflow_datasets as tfds
        builder = tfds.builder(self.name, data_dir=self.data_dir or None)
        ds = builder.as_dataset(split=self.split, shuffle_files=False,
                                decoders={self.image_key: tfds.decode.SkipDecoding()})
        for example in tfds.as_numpy(ds):
            yield example[self.image_key], (int(example[self.label_key]) if self.label_key else None)

    def item_name(self, item):
        return f"{len(item[0])}-byte record"

    def load(self, item):
        return decode_image(item[0], self.num_channels), item[1]


def _tfds_prepared(builder):
    try:
        return bool(builder.info.splits) and os.path.isdir(builder.data_path)
    except Exception:
        return False


def open_image_source(spec, mnist_rgb=False, count=0, seed=0, resolution=64, tfds_data_dir=None,
                      tfds_manual_dir=None):
    """Parse a source value (progan-prepare's --source) into a source object; raises SourceError.

    spec: a folder path | tfds:NAME[/CONFIG][:SPLIT] | mnist:DIR[:SPLIT] | cifar10:DIR[:SPLIT] | synthetic
    | emoji[:FONT][:all|train|test]. mnist_rgb builds the paper's MNIST-RGB from an mnist: source. count and seed are
    for synthetic and MNIST-RGB (count 0 = 4096 and 1,000,000); synthetic images are rendered at side `resolution`.
    """
    kind, _, rest = spec.partition(":")
    if spec == "synthetic":
        return SyntheticSource(count or 4096, resolution, seed)
    if kind == "emoji":
        from progan_tf.data import emoji
        return emoji.EmojiSource(*emoji.parse_spec(rest))
    if kind in ("mnist", "cifar10") and rest:
        directory, split = rest, "train"
        if rest.rsplit(":", 1)[-1] in ("train", "test") and ":" in rest:
            directory, split = rest.rsplit(":", 1)
        if kind == "mnist":
            return MnistSource(directory, split, rgb=mnist_rgb, count=count, seed=seed)
        return Cifar10Source(directory, split)
    if kind == "tfds" and rest:
        name, _, split = rest.partition(":")
        return TfdsSource(name, split or "train", tfds_data_dir, tfds_manual_dir)
    if not os.path.exists(spec):
        raise SourceError("{source}={spec} does not exist (expected a folder, tfds:NAME[/CONFIG][:SPLIT], "
                          "mnist:DIR, cifar10:DIR, emoji[:FONT][:SPLIT] or synthetic)", spec=spec)
    return FolderSource(spec)
