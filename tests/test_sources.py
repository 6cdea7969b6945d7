"""Preparation sources (progan_tf/data/sources.py): squaring and resizing, MNIST, CIFAR-10, TFDS."""
import gzip

import numpy as np
import pytest
from PIL import Image

from prepared_datasets import ListSource, assert_exact_pyramid, prepare
from progan_tf.data import sources, tfrecord


def test_top_level_is_the_source_after_crop_pad_and_lanczos_resize(tmp_path):
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (8, 16, 3), np.uint8)  # H=8, W=16
    big = rng.integers(0, 256, (40, 32, 3), np.uint8)  # H=40, W=32

    prepare(ListSource([wide]), tmp_path / "pad", crop="pad", max_resolution=16)
    padded = np.zeros((16, 16, 3), np.uint8)
    padded[4:12] = wide
    assert_exact_pyramid(tmp_path / "pad", padded[None])

    prepare(ListSource([big]), tmp_path / "crop", crop="center", max_resolution=16)
    square = big[4:36]  # central 32x32
    resized = np.asarray(Image.fromarray(square).resize((16, 16), Image.LANCZOS))
    assert_exact_pyramid(tmp_path / "crop", resized[None])


def _write_idx(path, array, compress=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)


def test_mnist_idx_files_are_read_and_padded_to_32(tmp_path):
    rng = np.random.default_rng(2)
    digits = rng.integers(0, 256, (5, 28, 28), np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.int64)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", digits, compress=True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    source = sources.open_image_source(f"mnist:{tmp_path}")
    assert source.num_channels == 1 and len(source) == 5
    prepare(source, tmp_path / "d", keep_labels=True)
    top = np.pad(digits, ((0, 0), (2, 2), (2, 2)))[..., None]
    manifest, _ = assert_exact_pyramid(tmp_path / "d", top)
    assert manifest["max_resolution"] == 32 and manifest["num_channels"] == 1
    assert tfrecord.read_level(str(tmp_path / "d"), 32, labels=True)[1].tolist() == [3, 1, 4, 1, 5]

    rgb = sources.open_image_source(f"mnist:{tmp_path}:train", mnist_rgb=True, count=6, seed=1)
    prepare(rgb, tmp_path / "rgb", keep_labels=True)
    images, rgb_labels = tfrecord.read_level(str(tmp_path / "rgb"), 32, labels=True)
    assert images.shape == (6, 32, 32, 3)
    for image, label in zip(images, rgb_labels):
        picks = [next(i for i in range(5) if np.array_equal(top[i, ..., 0], image[..., c])) for c in range(3)]
        assert label == 100 * labels[picks[0]] + 10 * labels[picks[1]] + labels[picks[2]]


def test_cifar10_binary_batches_are_read(tmp_path):
    rng = np.random.default_rng(3)
    chw = rng.integers(0, 256, (5, 3, 32, 32), np.uint8)
    labels = np.array([9, 0, 7, 2, 2], np.uint8)
    records = np.concatenate([labels[:, None], chw.reshape(5, -1)], axis=1)  # [5, 3073]
    records[:3].tofile(tmp_path / "data_batch_1.bin")
    records[3:].tofile(tmp_path / "data_batch_2.bin")
    (tmp_path / "batches.meta.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    source = sources.open_image_source(f"cifar10:{tmp_path}")
    assert len(source) == 5 and source.label_names[9] == "class9"
    manifest = prepare(source, tmp_path / "d", keep_labels=True)
    assert_exact_pyramid(tmp_path / "d", chw.transpose(0, 2, 3, 1))
    assert tfrecord.read_level(str(tmp_path / "d"), 32, labels=True)[1].tolist() == [9, 0, 7, 2, 2]
    assert manifest["labels"]["names"][0] == "class0"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "data_batch_1.bin").write_bytes(b"x" * 100)
    with pytest.raises(sources.SourceError, match="not a CIFAR-10 binary batch"):
        sources.open_image_source(f"cifar10:{tmp_path / 'bad'}")


def test_tfds_source_reads_a_locally_built_dataset(tmp_path):
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(4)
    toy_images = rng.integers(0, 256, (6, 12, 12, 3), np.uint8)

    class ProganToyImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3)),
                "label": tfds.features.ClassLabel(names=["even", "odd"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i, image in enumerate(toy_images):
                yield i, {"image": image, "label": i % 2}

    builder = ProganToyImages(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))

    with pytest.raises(sources.SourceError, match="is not prepared in .* never downloads"):
        sources.open_image_source("tfds:progan_toy_images", tfds_data_dir=str(tmp_path / "elsewhere"))
    source = sources.open_image_source("tfds:progan_toy_images:train", tfds_data_dir=str(tmp_path / "tfds"))
    assert len(source) == 6 and source.num_channels == 3 and source.label_names == ["even", "odd"]
    manifest = prepare(source, tmp_path / "d", max_resolution=8, keep_labels=True)
    images, labels = tfrecord.read_level(str(tmp_path / "d"), 8, labels=True)
    expected = {np.asarray(Image.fromarray(x).resize((8, 8), Image.LANCZOS)).tobytes(): i % 2
                for i, x in enumerate(toy_images)}
    assert {image.tobytes(): int(label) for image, label in zip(images, labels)} == expected
    assert manifest["source"] == "tfds:progan_toy_images:train" and manifest["num_images"] == 6
