"""progan-prepare's library: sources, exact pyramids, bad files, labels, the on-disk format."""
import gzip
import io
import os

import numpy as np
import pytest
from PIL import Image

from progan_tf.data import prepare as prepare_lib
from progan_tf.data import sources, tfrecord
from progan_tf.data.synthetic import synthetic_images


class ListSource(sources.IndexedSource):
    """In-memory test source: any list of uint8 [H, W, C] arrays (labels = list positions)."""
    kind = "list"
    label_names = None
    description = "test list"

    def __init__(self, images):
        self.images = images
        self.count = len(images)
        self.num_channels = images[0].shape[-1]

    def load(self, item):
        return self.images[item], item


def prepare(source, out_dir, **kwargs):
    kwargs = {"workers": 1, "shuffle": False, "progress": False, **kwargs}
    return prepare_lib.prepare_dataset(source, str(out_dir), **kwargs)


def mean_2x2_rounded(level):
    """Reference reduction, written independently of the library: floor(mean + 1/2) of each 2x2 block."""
    n, r, _, c = level.shape
    mean = level.astype(np.float64).reshape(n, r // 2, 2, r // 2, 2, c).mean(axis=(2, 4))
    return np.floor(mean + 0.5).astype(np.uint8)


def assert_exact_pyramid(data_dir, top):
    """The top level equals `top` and every lower level is the rounded 2x2 average of the one above."""
    manifest = tfrecord.read_manifest(str(data_dir))
    levels = {r: tfrecord.read_level(str(data_dir), r, manifest) for r in manifest["resolutions"]}
    np.testing.assert_array_equal(levels[manifest["max_resolution"]], top)
    for r in manifest["resolutions"][:-1]:
        np.testing.assert_array_equal(levels[r], mean_2x2_rounded(levels[2 * r]), err_msg=f"level {r}")
    return manifest, levels


def test_every_level_is_the_exact_2x2_average_of_the_one_above(tmp_path):
    images, _ = synthetic_images(12, 32, seed=3)
    prepare(ListSource(list(images)), tmp_path / "d", shards=5)
    manifest, levels = assert_exact_pyramid(tmp_path / "d", images)
    assert manifest["resolutions"] == [4, 8, 16, 32] and manifest["num_images"] == 12
    assert [len(manifest["levels"][str(r)]) for r in manifest["resolutions"]] == [5, 5, 5, 5]
    assert levels[4].shape == (12, 4, 4, 3) and levels[4].dtype == np.uint8


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


def _png_bytes(image, **save):
    buffer = io.BytesIO()
    image.save(buffer, **save)
    return buffer.getvalue()


def test_folder_with_bad_files_skips_and_lists_exactly_them(tmp_path, capfd):
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for sub in ("a", "b", "bad"):
        (root / sub).mkdir(parents=True)
    rgb = rng.integers(0, 256, (16, 16, 3), np.uint8)
    gray = rng.integers(0, 256, (16, 16), np.uint8)
    rgba = rng.integers(0, 256, (16, 16, 4), np.uint8)
    gray16 = rng.integers(0, 65536, (16, 16), np.uint16)
    palette = Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).quantize(8)
    photo = rng.integers(0, 256, (16, 24, 3), np.uint8)  # H=16, W=24 JPEG: centre-cropped
    Image.fromarray(rgb).save(root / "a" / "rgb.png")
    Image.fromarray(gray, "L").save(root / "a" / "gray.png")
    Image.fromarray(rgba, "RGBA").save(root / "a" / "rgba.png")
    Image.fromarray(gray16).save(root / "b" / "gray16.png")  # mode I;16, a 16-bit PNG
    palette.save(root / "b" / "palette.png")
    Image.fromarray(rgb).save(root / "b" / "photo.bmp")
    Image.fromarray(photo).save(root / "b" / "photo.jpg", quality=90)
    Image.fromarray(rgb).save(root / "b" / "photo.webp", lossless=True)
    good = _png_bytes(Image.fromarray(rgb), format="PNG")
    (root / "bad" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, np.uint8)))
    (root / "bad" / "truncated.png").write_bytes(good[:len(good) // 2])
    (root / "bad" / "empty.jpg").write_bytes(b"")
    jpeg = _png_bytes(Image.fromarray(rgb), format="JPEG")
    (root / "bad" / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    Image.fromarray(rgb[:8, :8]).save(root / "small.png")  # below 16x16, no --allow_upscale
    (root / "notes.txt").write_text("not an image: ignored, not counted")

    source = sources.FolderSource(str(root))
    assert len(source) == 13 and source.label_names == ["a", "b", "bad"]
    manifest = prepare(source, tmp_path / "d", max_resolution=16, workers=2, keep_labels=True, progress=True)

    bad = {"bad/corrupt.png", "bad/truncated.png", "bad/empty.jpg", "bad/truncated.jpg", "small.png"}
    assert {s["item"] for s in manifest["skipped"]} == bad
    assert manifest["num_skipped"] == 5 and manifest["num_images"] == 8
    assert "smaller than 16x16" in next(s["reason"] for s in manifest["skipped"] if s["item"] == "small.png")
    stderr = capfd.readouterr().err
    assert all(f"skipped {name}:" in stderr for name in bad)

    with Image.open(root / "b" / "photo.jpg") as f:
        photo_decoded = np.asarray(f.convert("RGB"))[:, 4:20]
    expected = np.stack([
        np.repeat(gray[..., None], 3, axis=2),  # a/gray.png
        rgb,  # a/rgb.png
        ((rgba[..., :3].astype(np.uint32) * rgba[..., 3:] + 127) // 255).astype(np.uint8),  # a/rgba.png over black
        np.repeat(np.round(gray16 / 257.0).astype(np.uint8)[..., None], 3, axis=2),  # b/gray16.png
        np.asarray(palette.convert("RGB")),  # b/palette.png
        rgb,  # b/photo.bmp
        photo_decoded,  # b/photo.jpg
        rgb,  # b/photo.webp
    ])
    _, labels = tfrecord.read_level(str(tmp_path / "d"), 16, labels=True)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert_exact_pyramid(tmp_path / "d", expected)


def test_preflight_fails_fast_on_small_or_unreadable_sources(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(folder / f"{i}.png")
    source = sources.FolderSource(str(folder))
    with pytest.raises(sources.SourceError, match=r"8x8 or smaller, below --max_resolution=16; lower it \(to 8\)"):
        prepare(source, tmp_path / "d", max_resolution=16)
    assert not os.path.exists(tmp_path / "d")
    assert prepare(source, tmp_path / "d", max_resolution=16, allow_upscale=True)["num_images"] == 3
    assert prepare(source, tmp_path / "e")["max_resolution"] == 8  # inferred
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        prepare(source, tmp_path / "d")
    assert prepare(source, tmp_path / "d", overwrite=True)["max_resolution"] == 8
    (tmp_path / "empty").mkdir()
    with pytest.raises(sources.SourceError, match="holds no png/jpg/jpeg/webp/bmp files"):
        sources.open_image_source(str(tmp_path / "empty"))
    with pytest.raises(sources.SourceError, match="does not exist"):
        sources.open_image_source(str(tmp_path / "missing"))


def test_shuffled_order_is_a_seeded_permutation_and_shards_follow_the_flags(tmp_path):
    images = [np.full((4, 4, 1), 10 * i, np.uint8) for i in range(10)]
    manifest = prepare(ListSource(images), tmp_path / "a", shuffle=True, seed=5, images_per_shard=3)
    order = tfrecord.read_level(str(tmp_path / "a"), 4)[:, 0, 0, 0] // 10
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert [s["num_images"] for s in manifest["levels"]["4"]] == [3, 3, 2, 2]
    prepare(ListSource(images), tmp_path / "b", shuffle=True, seed=5)
    np.testing.assert_array_equal(tfrecord.read_level(str(tmp_path / "b"), 4)[:, 0, 0, 0] // 10, order)


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


def test_reader_refuses_incomplete_or_damaged_datasets(tmp_path):
    prepare(ListSource([np.zeros((8, 8, 3), np.uint8)] * 4), tmp_path / "d")
    tfrecord.read_manifest(str(tmp_path / "d"))
    shard = tmp_path / "d" / "r0008" / "part-00000-of-00001.tfrecord"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match="missing or has the wrong size"):
        tfrecord.read_manifest(str(tmp_path / "d"))
    os.remove(tmp_path / "d" / "manifest.json")
    with pytest.raises(ValueError, match="not a prepared dataset"):
        tfrecord.read_manifest(str(tmp_path / "d"))


def test_one_image_duplicates_links_mixed_sizes_and_files_changing_meanwhile(tmp_path):
    rng = np.random.default_rng(7)
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), np.uint8)).save(one / "only.png")
    assert prepare(sources.FolderSource(str(one)), tmp_path / "d1", max_resolution=16)["num_images"] == 1

    root = tmp_path / "many"
    root.mkdir()
    pictures = [rng.integers(0, 256, (h, w, 3), np.uint8) for h, w in ((16, 16), (40, 24), (64, 64), (17, 33))]
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(root / f"{i}.png")
    (root / "copy.png").write_bytes((root / "0.png").read_bytes())  # the same file twice
    os.symlink(root / "2.png", root / "link.png")  # and once through a link
    Image.fromarray(pictures[1]).save(root / "vanishes.png")
    Image.fromarray(pictures[2]).save(root / "shrinks.png")
    source = sources.FolderSource(str(root))  # the listing is taken here ...
    os.remove(root / "vanishes.png")  # ... and then the folder changes under the job
    with open(root / "shrinks.png", "r+b") as f:
        f.truncate(40)
    manifest = prepare(source, tmp_path / "d2", max_resolution=16)
    assert {s["item"] for s in manifest["skipped"]} == {"vanishes.png", "shrinks.png"}
    assert manifest["num_images"] == 6  # mixed sizes are squared and resized, duplicates kept
    assert sorted((d["item"], d["same_as"]) for d in manifest["duplicates"]) == [("copy.png", "0.png"),
                                                                                ("link.png", "2.png")]
    assert manifest["num_duplicates"] == 2
